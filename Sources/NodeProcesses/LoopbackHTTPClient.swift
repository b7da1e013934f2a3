#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A blocking HTTP/1.1 client over one keep-alive connection to 127.0.0.1: how the demo,
/// the benchmark and their checks drive `session-node serve` processes (and nginx).
package final class LoopbackHTTPClient {
    package struct Response: Sendable {
        package var status: Int
        /// Header names lower-cased.
        package var headers: [String: String]
        package var body: [UInt8]

        /// The body as UTF-8 text.
        package var text: String { String(decoding: body, as: UTF8.self) }
        /// The node that answered (`X-Node`), or "?".
        package var node: String { headers["x-node"] ?? "?" }
        /// The SESSION_ID value of Set-Cookie, if any.
        package var sessionCookie: String? {
            guard let cookie = headers["set-cookie"], let range = cookie.range(of: "SESSION_ID=") else { return nil }
            return String(cookie[range.upperBound...].prefix { $0 != ";" && $0 != "," && $0 != " " })
        }
        /// The body decoded as JSON.
        package func decode<Value: Decodable>(_ type: Value.Type) throws -> Value {
            try JSONDecoder().decode(type, from: Data(body))
        }
    }

    /// One request on a connection of its own (so a round-robin proxy sees each request as
    /// a new client); nil when no HTTP answer came (refused, reset, timeout).
    package static func once(
        port: Int, _ method: String, _ path: String, body: String = "", session: String? = nil, timeoutSeconds: Int = 5
    ) -> Response? {
        let client = LoopbackHTTPClient(port: port, timeoutSeconds: timeoutSeconds)
        defer { client.disconnect() }
        return try? client.request(method, path, cookie: session, body: Array(body.utf8))
    }

    package let port: Int
    package let timeoutSeconds: Int
    package let timeoutMicroseconds: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    package init(port: Int, timeoutSeconds: Int = 5, timeoutMicroseconds: Int = 0) {
        self.port = port
        self.timeoutSeconds = timeoutSeconds
        self.timeoutMicroseconds = timeoutMicroseconds
    }

    deinit { disconnect() }

    package func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer.removeAll()
    }

    /// Opens the connection unless it is open.
    package func connect() throws {
        guard fd < 0 else { return }
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw HarnessError("socket failed") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: timeoutMicroseconds)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(s)
            throw HarnessError("connect to \(port) failed: errno \(errno)")
        }
        fd = s
    }

    /// One request; on any error the connection is dropped (the next request reconnects).
    package func request(_ method: String, _ path: String, cookie: String? = nil, body: [UInt8] = []) throws -> Response {
        do {
            try connect()
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
            if let cookie { head += "Cookie: SESSION_ID=\(cookie)\r\n" }
            head += "\r\n"
            let bytes = Array(head.utf8) + body
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw HarnessError("send failed: errno \(errno)") }
                sent += n
            }
            return try readResponse(headRequest: method == "HEAD")
        } catch {
            disconnect()
            throw error
        }
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw HarnessError(n == 0 ? "connection closed" : "recv failed: errno \(errno)") }
        buffer += chunk[0..<n]
    }

    private func readResponse(headRequest: Bool) throws -> Response {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where buffer[i] == 13 && Array(buffer[i..<i + 4]) == separator {
                    headEnd = i
                    break
                }
            }
            if headEnd == nil { try fill() }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw HarnessError("bad status line") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body: [UInt8] = []
        if let length = headers["content-length"].flatMap(Int.init), !headRequest {
            while buffer.count < length { try fill() }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            body = try readChunked()
        }
        return Response(status: status, headers: headers, body: body)
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[0..<i], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                buffer.removeFirst(i + 1)
                return line
            }
            try fill()
        }
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            guard let size = Int(try readLine(), radix: 16) else { throw HarnessError("bad chunk size") }
            if size == 0 {
                _ = try readLine()
                return body
            }
            while buffer.count < size + 2 { try fill() }
            body += buffer[0..<size]
            buffer.removeFirst(size + 2)
        }
    }
}
