import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Ports on 127.0.0.1 free right now, for nodes started by the harness.
package enum FreePort {
    /// A port free for both TCP and UDP (a node listens on both), not in `taken`; it is
    /// added to `taken`, so ports picked together never collide.
    package static func pick(avoiding taken: inout Set<Int>) throws -> Int {
        for _ in 0..<100 {
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(tcp) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(tcp, $0, length) }
            }
            guard bound == 0 else { continue }
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(tcp, $0, &length) }
            }
            let port = Int(UInt16(bigEndian: address.sin_port))
            guard !taken.contains(port) else { continue }
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(udp) }
            let udpBound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, length) }
            }
            if udpBound == 0 {
                taken.insert(port)
                return port
            }
        }
        throw HarnessError("no free port found on 127.0.0.1")
    }

    /// A free port, without a set of ports to avoid.
    package static func pick() throws -> Int {
        var taken = Set<Int>()
        return try pick(avoiding: &taken)
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    package static func isListening(_ port: Int) -> Bool {
        let client = LoopbackHTTPClient(port: port, timeoutSeconds: 1)
        return (try? client.connect()) != nil
    }
}
