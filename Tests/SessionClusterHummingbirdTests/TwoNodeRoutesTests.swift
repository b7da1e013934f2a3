import Foundation
import Hummingbird
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import Testing

@testable import SessionClusterHummingbird

/// The HTTP contract across two nodes, as a round-robin load balancer would use them.
@Suite(.timeLimit(.minutes(1)))
struct TwoNodeRoutesTests {
    func app(_ cluster: SessionCluster) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: NodeHeaderMiddleware(nodeID: cluster.configuration.nodeID.rawValue))
        SessionClusterRoutes(cluster: cluster).register(on: router)
        return Application(router: router)
    }

    @Test func aSessionWrittenOnOneNodeIsServedAndEndedOnTheOther() async throws {
        try await TwoNodes.with { first, second in
            try await app(first).test(.router) { a in
                try await app(second).test(.router) { b in
                    let created = try await a.execute(uri: "/session", method: .post)
                    #expect(created.status == .created, "POST /session: \(String(buffer: created.body))")
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
