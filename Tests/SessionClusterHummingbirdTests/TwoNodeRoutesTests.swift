import Foundation
import Hummingbird
import HummingbirdTesting
import SessionCluster
import Testing

@testable import SessionClusterHummingbird

/// The HTTP contract across two nodes, as a round-robin load balancer would use them.
@Suite(.timeLimit(.minutes(1)))
struct TwoNodeRoutesTests {
    struct NotReady: Error {}

    /// Two nodes on 127.0.0.1, the second seeded with the first, both in one view.
    func withTwoNodes(_ body: (SessionCluster, SessionCluster) async throws -> Void) async throws {
        let first = try SessionCluster(configuration: .local(id: "a"))
        try await first.start()
        let second = try SessionCluster(configuration: .local(id: "b", seeds: [first.boundAddress!]))
        do {
            try await second.start()
            let deadline = ContinuousClock.now + .seconds(15)
            while true {
                let statuses = [try? await first.status(), try? await second.status()]
                if statuses.allSatisfy({ $0?.members.count == 2 && $0?.partitionsFilling == 0 }) { break }
                guard ContinuousClock.now < deadline else { throw NotReady() }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await body(first, second)
        } catch {
            await first.shutdown()
            await second.shutdown()
            throw error
        }
        await first.shutdown()
        await second.shutdown()
    }

    func app(_ cluster: SessionCluster) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: NodeHeaderMiddleware(nodeID: cluster.configuration.nodeID.rawValue))
        SessionClusterRoutes(cluster: cluster).register(on: router)
        return Application(router: router)
    }

    @Test func aSessionWrittenOnOneNodeIsServedAndEndedOnTheOther() async throws {
        try await withTwoNodes { first, second in
            try await app(first).test(.router) { a in
                try await app(second).test(.router) { b in
                    let created = try await a.execute(uri: "/session", method: .post)
                    #expect(created.headers[.init("X-Node")!] == "a")
                    let cookie = try #require(created.headers[.setCookie]).prefix { $0 != ";" }
                    let headers: HTTPFields = [.cookie: String(cookie)]
                    let put = try await b.execute(
                        uri: "/session/attributes/color", method: .put, headers: headers, body: ByteBuffer(string: "blue"))
                    #expect(put.status == .noContent)
                    #expect(put.headers[.init("X-Node")!] == "b")
                    let read = try await a.execute(uri: "/session/attributes/color", method: .get, headers: headers)
                    #expect(String(buffer: read.body) == "blue")
                    let end = try await b.execute(uri: "/session", method: .delete, headers: headers)
                    #expect(end.status == .noContent)
                    for client in [a, b] {
                        let after = try await client.execute(uri: "/session", method: .get, headers: headers)
                        #expect(after.status == .unauthorized)
                    }
                }
            }
        }
    }
}
