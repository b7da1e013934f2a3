// Helpers of `session-node demo` of its own: output, and a fallback round-robin TCP proxy
// on 127.0.0.1 (child processes, ports and HTTP are NodeProcesses').
import Foundation
import NodeProcesses

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prints one line at once, even when stdout is a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
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

/// A round-robin TCP proxy: the demo's load balancer when nginx is missing.
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
            throw HarnessError("built-in proxy: cannot listen on 127.0.0.1")
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
