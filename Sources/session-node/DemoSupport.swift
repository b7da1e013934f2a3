// Helpers of `session-node demo`: child processes stopped by PID, free ports, a minimal
// HTTP/1.1 client and a fallback round-robin TCP proxy, all on 127.0.0.1 with POSIX calls.
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Prints one line at once, even when stdout is a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

// MARK: - child processes

/// Every process the demo starts, so each is stopped by its PID on exit, on error and on Ctrl-C.
final class DemoChildren: @unchecked Sendable {
    static let shared = DemoChildren()

    private struct Child {
        let name: String
        let process: Process
        let stopSignal: Int32
    }

    private let lock = NSLock()
    private var children: [Child] = []

    func add(_ name: String, _ process: Process, stopSignal: Int32 = SIGTERM) {
        lock.lock(); defer { lock.unlock() }
        children.append(Child(name: name, process: process, stopSignal: stopSignal))
    }

    /// SIGKILL one child by PID and reap it; it stays registered (stopAll skips dead ones).
    func sigkill(_ process: Process) {
        guard process.isRunning else { return }
        sendSignal(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Stops every child still running: its stop signal, then SIGKILL after a bounded wait.
    func stopAll(grace: TimeInterval = 5) {
        lock.lock()
        let all = children
        children.removeAll()
        lock.unlock()
        for child in all.reversed() where child.process.isRunning {
            let pid = child.process.processIdentifier
            sendSignal(pid, SIGCONT)
            sendSignal(pid, child.stopSignal)
        }
        for child in all.reversed() {
            let deadline = Date().addingTimeInterval(grace)
            while child.process.isRunning && Date() < deadline { usleep(50_000) }
            if child.process.isRunning {
                sendSignal(child.process.processIdentifier, SIGKILL)
                child.process.waitUntilExit()
            }
        }
    }
}

private func sendSignal(_ pid: pid_t, _ sig: Int32) {
    _ = kill(pid, sig)
}

/// Starts `executable arguments`, stdout and stderr appended to `log`, registered in DemoChildren.
func startChild(_ name: String, executable: String, arguments: [String], log: URL,
                stopSignal: Int32 = SIGTERM) throws -> Process {
    if !FileManager.default.fileExists(atPath: log.path) {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    }
    let handle = try FileHandle(forWritingTo: log)
    handle.seekToEndOfFile()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    try? handle.close()
    DemoChildren.shared.add(name, process, stopSignal: stopSignal)
    return process
}

/// Ctrl-C and SIGTERM stop every child by PID, then exit. SIGPIPE is ignored (a peer may die).
func installDemoSignalHandlers(cleanup: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
    signal(SIGPIPE, SIG_IGN)
    return [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            say("\ndemo: signal \(sig): stopping every child process")
            cleanup()
            exit(128 + sig)
        }
        source.resume()
        return source
    }
}

// MARK: - sockets

private func loopback(port: Int) -> sockaddr_in {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return addr
}

private func withSockaddr<T>(_ addr: inout sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
    withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

private func socketBound(type: Int32, port: Int) -> (fd: Int32, port: Int)? {
    let fd = socket(AF_INET, type, 0)
    guard fd >= 0 else { return nil }
    var addr = loopback(port: port)
    guard withSockaddr(&addr, { bind(fd, $0, $1) }) == 0 else { close(fd); return nil }
    var bound = sockaddr_in()
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &bound) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    return (fd, Int(UInt16(bigEndian: bound.sin_port)))
}

private let tcpType = Int32(SOCK_STREAM.rawValue)
private let udpType = Int32(SOCK_DGRAM.rawValue)

/// A port free on 127.0.0.1 (found by binding port 0), free for UDP as well when asked.
func freePort(udpToo: Bool = false, avoiding taken: inout Set<Int>) throws -> Int {
    for _ in 0..<50 {
        guard let (fd, port) = socketBound(type: tcpType, port: 0) else { continue }
        close(fd)
        if taken.contains(port) { continue }
        if udpToo {
            guard let (ufd, _) = socketBound(type: udpType, port: port) else { continue }
            close(ufd)
        }
        taken.insert(port)
        return port
    }
    throw DemoError("no free port on 127.0.0.1 after 50 tries")
}

private func connectLoopback(port: Int, timeout: TimeInterval) -> Int32? {
    let fd = socket(AF_INET, tcpType, 0)
    guard fd >= 0 else { return nil }
    var tv = timeval()
    tv.tv_sec = Int(timeout)
    tv.tv_usec = .init((timeout - floor(timeout)) * 1_000_000)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = loopback(port: port)
    guard withSockaddr(&addr, { connect(fd, $0, $1) }) == 0 else { close(fd); return nil }
    return fd
}

private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { return false }
        sent += n
    }
    return true
}

/// True when something accepts TCP connections on 127.0.0.1:port.
func isListening(port: Int) -> Bool {
    guard let fd = connectLoopback(port: port, timeout: 0.5) else { return false }
    close(fd)
    return true
}

// MARK: - a minimal HTTP/1.1 client (one connection per request: round-robin stays per request)

struct HTTPReply: Sendable {
    var status: Int
    var headers: [String: String]   // lower-cased names
    var body: String

    var node: String { headers["x-node"] ?? "?" }

    /// The SESSION_ID value of Set-Cookie, if any.
    var sessionCookie: String? {
        guard let cookie = headers["set-cookie"], let range = cookie.range(of: "SESSION_ID=") else { return nil }
        return String(cookie[range.upperBound...].prefix { $0 != ";" && $0 != "," && $0 != " " })
    }
}

/// One request to 127.0.0.1:port; nil when no HTTP answer came (refused, reset, timeout).
func httpRequest(port: Int, _ method: String, _ path: String, body: String = "",
                 session: String? = nil, timeout: TimeInterval = 5) -> HTTPReply? {
    guard let fd = connectLoopback(port: port, timeout: timeout) else { return nil }
    defer { close(fd) }
    var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    if let session { head += "Cookie: SESSION_ID=\(session)\r\n" }
    if !body.isEmpty || method == "PUT" || method == "POST" { head += "Content-Length: \(body.utf8.count)\r\n" }
    guard sendAll(fd, Array((head + "\r\n" + body).utf8)) else { return nil }
    var data = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline, data.count < 16 * 1024 * 1024 {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        data.append(contentsOf: buffer[0..<n])
        if let reply = parseHTTPReply(data) { return reply }
    }
    return parseHTTPReply(data, atEOF: true)
}

/// A complete response in `data`, or nil while it is incomplete.
private func parseHTTPReply(_ data: [UInt8], atEOF: Bool = false) -> HTTPReply? {
    let sep: [UInt8] = [13, 10, 13, 10]
    guard let end = (0..<max(0, data.count - 3)).first(where: { Array(data[$0..<$0 + 4]) == sep }) else { return nil }
    let lines = String(decoding: data[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
    let statusParts = lines[0].split(separator: " ")
    guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[..<colon].lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        headers[name] = headers[name].map { $0 + ", " + value } ?? value
    }
    var body = Array(data[(end + 4)...])
    if let length = headers["content-length"].flatMap({ Int($0) }) {
        guard body.count >= length else { return atEOF ? nil : nil }
        body = Array(body[0..<length])
    } else if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
        guard let decoded = dechunk(body) else { return nil }
        body = decoded
    } else if !atEOF && status != 204 && status != 304 {
        return nil
    }
    return HTTPReply(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
}

private func dechunk(_ bytes: [UInt8]) -> [UInt8]? {
    var out = [UInt8]()
    var i = 0
    while true {
        guard let lineEnd = (i..<max(i, bytes.count - 1)).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 }),
              let size = Int(String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";")[0]
                  .trimmingCharacters(in: .whitespaces), radix: 16)
        else { return nil }
        let start = lineEnd + 2
        if size == 0 { return out }
        guard start + size + 2 <= bytes.count else { return nil }
        out += bytes[start..<start + size]
        i = start + size + 2
    }
}

// MARK: - fallback proxy

/// Round-robin TCP proxy on 127.0.0.1, used only when nginx is missing and cannot be
/// installed: each accepted connection goes to the next node; a node that refuses the
/// connection (killed) is skipped.
final class RoundRobinProxy: @unchecked Sendable {
    let upstreams: [Int]
    private(set) var port = 0
    private var listenFD: Int32 = -1
    private let lock = NSLock()
    private var next = 0
    private var stopped = false

    init(upstreams: [Int]) { self.upstreams = upstreams }

    func start() throws -> Int {
        guard let (fd, port) = socketBound(type: tcpType, port: 0), listen(fd, 128) == 0 else {
            throw DemoError("built-in proxy: cannot listen on 127.0.0.1")
        }
        listenFD = fd
        self.port = port
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
        return port
    }

    func stop() {
        lock.lock(); stopped = true; lock.unlock()
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    private func acceptLoop() {
        while true {
            let client = accept(listenFD, nil, nil)
            lock.lock(); let done = stopped; let first = next; next += 1; lock.unlock()
            if done { if client >= 0 { close(client) }; return }
            guard client >= 0 else { continue }
            Thread { [self] in serve(client, first: first) }.start()
        }
    }

    private func serve(_ client: Int32, first: Int) {
        defer { close(client) }
        for k in 0..<upstreams.count {
            let port = upstreams[(first + k) % upstreams.count]
            guard let upstream = connectLoopback(port: port, timeout: 30) else { continue }
            let done = DispatchSemaphore(value: 0)
            Thread { pump(from: upstream, to: client); done.signal() }.start()
            pump(from: client, to: upstream)
            _ = done.wait(timeout: .now() + 30)
            close(upstream)
            return
        }
    }
}

/// Copies bytes until EOF or error, then half-closes the destination.
private func pump(from src: Int32, to dst: Int32) {
    var buffer = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
        let n = buffer.withUnsafeMutableBytes { recv(src, $0.baseAddress, $0.count, 0) }
        if n <= 0 || !sendAll(dst, Array(buffer[0..<n])) { break }
    }
    shutdown(dst, Int32(SHUT_WR))
}
