#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// A blocking HTTP/1.1 client over one keep-alive connection to 127.0.0.1, enough for the
/// failover figure (the bench process drives `session-node serve` processes over HTTP).
final class TinyHTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
    }

    let port: Int
    let timeoutSeconds: Int
    let timeoutMicroseconds: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    init(port: Int, timeoutSeconds: Int = 5, timeoutMicroseconds: Int = 0) {
        self.port = port
        self.timeoutSeconds = timeoutSeconds
        self.timeoutMicroseconds = timeoutMicroseconds
    }

    deinit { disconnect() }

    func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer.removeAll()
    }

    private func connectIfNeeded() throws {
        guard fd < 0 else { return }
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw BenchError("socket failed") }
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
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(s)
            throw BenchError("connect to \(port) failed: errno \(errno)")
        }
        fd = s
    }

    /// One request; on any error the connection is dropped (the next request reconnects).
    func request(_ method: String, _ path: String, cookie: String? = nil, body: [UInt8] = []) throws -> Response {
        do {
            try connectIfNeeded()
            var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n"
            if let cookie { head += "Cookie: SESSION_ID=\(cookie)\r\n" }
            head += "\r\n"
            let bytes = Array(head.utf8) + body
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw BenchError("send failed: errno \(errno)") }
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
        guard n > 0 else { throw BenchError(n == 0 ? "connection closed" : "recv failed: errno \(errno)") }
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
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw BenchError("bad status line") }
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
            guard let size = Int(try readLine(), radix: 16) else { throw BenchError("bad chunk size") }
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

/// Failover with real processes: 3 `session-node serve` nodes, sessions created on the
/// victim (a node's new ids fall in partitions it owns), writers that update them through
/// the two other nodes one acknowledged write at a time, `kill -9` of the victim.
enum BenchFailover {
    struct WriterLog: Sendable {
        var ackedSeqs: [String: [Int]] = [:]
        var acked = 0
        var firstAckAfterKill: Date?
        var failures = 0
    }

    /// What the writer threads and the driver share.
    final class SharedState: Sendable {
        let killTime = Mutex<Date?>(nil)
        let stopFlag = Atomic<Bool>(false)
        let logs: Mutex<[WriterLog]>
        init(writers: Int) { logs = Mutex(Array(repeating: WriterLog(), count: writers)) }
    }

    struct Node {
        let id: String
        let httpPort: Int
        let peerPort: Int
        let process: ChildProcess
    }

    struct RunResult {
        var outage: Double?
        var firstAck: Double?
        var lost: Int
        var acked: Int
        var sessions: Int
        var ownedByVictim: Int
        var victimWasLeader: Bool
        var viewChange: Double?
        var newWrite: Double?
        var error: String?

        var json: [String: Any] {
            [
                "outage_s": outage.map { $0 as Any } ?? NSNull(), "first_ack_s": firstAck.map { $0 as Any } ?? NSNull(),
                "lost_writes": lost, "acked_writes": acked, "sessions": sessions, "owned_by_victim_check": ownedByVictim,
                "victim_was_leader": victimWasLeader, "view_change_s": viewChange.map { $0 as Any } ?? NSNull(),
                "new_write_s": newWrite.map { $0 as Any } ?? NSNull(), "error": error.map { $0 as Any } ?? NSNull(),
            ]
        }
    }

    static func startNodes(count: Int, logDirectory: String) throws -> [Node] {
        let ports = try (0..<count).map { _ in (try FreePort.pick(), try FreePort.pick()) }
        let seeds = ports.flatMap { ["--seed", "127.0.0.1:\($0.1)"] }
        var nodes: [Node] = []
        for (index, (http, peer)) in ports.enumerated() {
            let id = "f\(index + 1)"
            let process = try ChildProcess(
                name: id, executable: SelfExecutable.path,
                arguments: ["serve", "--id", id, "--http", "127.0.0.1:\(http)", "--bind", "127.0.0.1:\(peer)", "--log-level", "warning"]
                    + seeds,
                logFile: "\(logDirectory)/failover-\(id).log")
            nodes.append(Node(id: id, httpPort: http, peerPort: peer, process: process))
        }
        return nodes
    }

    static func clusterStatus(_ port: Int) -> [String: Any]? {
        let client = TinyHTTP(port: port, timeoutSeconds: 2)
        guard let response = try? client.request("GET", "/cluster"), response.status == 200 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any]
    }

    static func waitSettled(_ nodes: [Node], seconds: Double) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let ok = nodes.allSatisfy { node in
                guard let status = clusterStatus(node.httpPort) else { return false }
                let members = (status["members"] as? [[String: Any]])?.filter { ($0["state"] as? String) == "alive" }.count ?? 0
                return members == nodes.count && (status["partitionsFilling"] as? Int) == 0 && (status["leaseValid"] as? Bool) == true
            }
            if ok { return }
            usleep(50_000)
        }
        throw BenchError("failover: the \(nodes.count) nodes did not form one view within \(seconds) s")
    }

    /// One run: fresh cluster, `sessionCount` sessions on the victim, `writers` writer threads.
    static func run(sessionCount: Int, writers: Int, logDirectory: String) throws -> RunResult {
        let nodes = try startNodes(count: 3, logDirectory: logDirectory)
        defer { for node in nodes { node.process.stop() } }
        try waitSettled(nodes, seconds: 30)
        // The victim: the last node, unless it leads (a leader's death also costs an election;
        // the issue asks for the owner of a set of sessions).
        let leader = clusterStatus(nodes[0].httpPort)?["leader"] as? String
        let victim = nodes.last(where: { $0.id != leader }) ?? nodes[2]
        let survivors = nodes.filter { $0.id != victim.id }

        // Sessions created on the victim: it picks ids in partitions it owns.
        let creator = TinyHTTP(port: victim.httpPort)
        var ids: [String] = []
        for _ in 0..<sessionCount {
            let response = try creator.request("POST", "/session")
            guard response.status == 201, response.headers["x-node"] == victim.id || response.headers["x-node"] == nil,
                let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                let id = object["id"] as? String
            else { throw BenchError("failover: POST /session answered \(response.status)") }
            ids.append(id)
        }
        let spareResponse = try creator.request("POST", "/session")
        guard let spareObject = try JSONSerialization.jsonObject(with: Data(spareResponse.body)) as? [String: Any],
            let spare = spareObject["id"] as? String
        else { throw BenchError("failover: no spare session") }
        creator.disconnect()
        // Check ownership as far as the API shows it: the victim's owned partition count.
        let ownedPartitions = clusterStatus(victim.httpPort)?["partitionsOwned"] as? Int ?? 0

        let shared = SharedState(writers: writers)
        let sessionIDs = ids
        let threads = (0..<writers).map { w in
            Thread {
                let mine = stride(from: w, to: sessionIDs.count, by: writers).map { sessionIDs[$0] }
                let client = TinyHTTP(port: survivors[w % survivors.count].httpPort, timeoutSeconds: 5)
                var seq = 0
                var i = 0
                while !shared.stopFlag.load(ordering: .relaxed) {
                    let id = mine[i % mine.count]
                    i += 1
                    seq += 1
                    let sentAt = Date()
                    let ok = ((try? client.request("PUT", "/session/attributes/seq", cookie: id, body: Array(String(seq).utf8)))?.status
                        == 204)
                    let killed = shared.killTime.withLock { $0 }
                    shared.logs.withLock { logs in
                        if ok {
                            logs[w].ackedSeqs[id, default: []].append(seq)
                            logs[w].acked += 1
                            if let killed, sentAt > killed, logs[w].firstAckAfterKill == nil { logs[w].firstAckAfterKill = Date() }
                        } else {
                            logs[w].failures += 1
                        }
                    }
                    if !ok { usleep(2_000) }
                }
                client.disconnect()
            }
        }
        for thread in threads { thread.start() }
        Thread.sleep(forTimeInterval: 1.0)
        let killedAt = Date()
        shared.killTime.withLock { $0 = killedAt }
        victim.process.kill(SIGKILL)
        // When the survivors' view drops the victim (the leader's decision), for the diagnosis.
        let epochBefore = clusterStatus(survivors[0].httpPort)?["viewEpoch"] as? Int
        let viewChange = Mutex<Double?>(nil)
        let monitor = Thread {
            let bound = killedAt.addingTimeInterval(20)
            while Date() < bound {
                if let status = clusterStatus(survivors[0].httpPort), let members = status["members"] as? [[String: Any]],
                    !members.contains(where: { ($0["id"] as? String) == victim.id }) || (status["viewEpoch"] as? Int) != epochBefore
                {
                    viewChange.withLock { $0 = Date().timeIntervalSince(killedAt) }
                    return
                }
                usleep(10_000)
            }
        }
        monitor.start()
        // Probes: fresh writes of a spare victim session every ~50 ms, each given up after
        // 200 ms, to tell when a newly issued write succeeds (the writers above may sit on a
        // request that was forwarded to the dead owner).
        let newWrite = Mutex<Double?>(nil)
        let probes = (0..<4).map { p in
            Thread {
                usleep(useconds_t(p * 50_000))
                let client = TinyHTTP(port: survivors[p % survivors.count].httpPort, timeoutSeconds: 0, timeoutMicroseconds: 200_000)
                let bound = killedAt.addingTimeInterval(20)
                var n = 0
                while Date() < bound && newWrite.withLock({ $0 == nil }) {
                    n += 1
                    let response = try? client.request("PUT", "/session/attributes/probe", cookie: spare, body: Array("\(p)-\(n)".utf8))
                    if response?.status == 204 {
                        let at = Date().timeIntervalSince(killedAt)
                        newWrite.withLock { $0 = min($0 ?? at, at) }
                    } else if response == nil {
                        continue  // timed out: the next probe starts at once
                    } else {
                        usleep(20_000)
                    }
                }
                client.disconnect()
            }
        }
        for probe in probes { probe.start() }
        // Wait (bounded) until every writer has an ack after the kill, then write 0.5 s more.
        let bound = killedAt.addingTimeInterval(20)
        while Date() < bound && shared.logs.withLock({ $0.contains { $0.firstAckAfterKill == nil } }) { usleep(5_000) }
        Thread.sleep(forTimeInterval: 0.5)
        shared.stopFlag.store(true, ordering: .relaxed)
        let joinBound = Date().addingTimeInterval(10)
        while Date() < joinBound && threads.contains(where: { $0.isExecuting }) { usleep(10_000) }

        while (monitor.isExecuting || probes.contains(where: \.isExecuting)) && Date() < joinBound { usleep(10_000) }
        let final = shared.logs.withLock { $0 }
        let afterKill = final.compactMap(\.firstAckAfterKill).map { $0.timeIntervalSince(killedAt) }
        let allWritable = afterKill.count == writers ? afterKill.max() : nil
        // Final read of every session from a survivor: the value must be at least the last acked seq.
        let reader = TinyHTTP(port: survivors[0].httpPort)
        var lost = 0
        var readErrors = 0
        for log in final {
            for (id, acked) in log.ackedSeqs {
                guard let response = try? reader.request("GET", "/session/attributes/seq", cookie: id), response.status == 200,
                    let value = Int(String(decoding: response.body, as: UTF8.self))
                else {
                    readErrors += 1
                    lost += acked.count  // every acked write of this session is gone
                    continue
                }
                // Writes to one session are sequential, so the stored value is the latest
                // applied; every acked seq above it is a lost acknowledged write.
                lost += acked.filter { $0 > value }.count
            }
        }
        return RunResult(
            outage: allWritable, firstAck: afterKill.min(), lost: lost, acked: final.reduce(0) { $0 + $1.acked },
            sessions: ids.count, ownedByVictim: ownedPartitions, victimWasLeader: victim.id == leader,
            viewChange: viewChange.withLock { $0 }, newWrite: newWrite.withLock { $0 },
            error: readErrors > 0 ? "\(readErrors) sessions unreadable after failover" : (allWritable == nil ? "not writable within 20 s" : nil))
    }
}
