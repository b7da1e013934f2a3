import Foundation
import Hummingbird
import HummingbirdAuth
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import Testing

@testable import SessionClusterHummingbird

/// hummingbird-auth's SessionMiddleware, unchanged, over the cluster driver.
@Suite(.timeLimit(.minutes(1)))
struct SessionMiddlewareTests {
    struct Visits: Codable, Sendable {
        var user: String
        var count: Int
    }

    typealias Context = BasicSessionRequestContext<Visits, String>

    func makeRouter(_ persist: SessionClusterPersistDriver) -> Router<Context> {
        let router = Router(context: Context.self)
        router.add(middleware: SessionMiddleware(storage: persist))
        router.post("/login") { _, context -> HTTPResponse.Status in
            context.sessions.createSession(Visits(user: "ada", count: 0))
            return .ok
        }
        router.post("/visit") { _, context -> String in
            guard var visits = context.sessions.session else { throw HTTPError(.unauthorized) }
            visits.count += 1
            _ = context.sessions.updateSession(visits)
            return "\(visits.user) \(visits.count)"
        }
        router.post("/logout") { _, context -> HTTPResponse.Status in
            context.sessions.clearSession()
            return .ok
        }
        return router
    }

    static func cookie(from response: TestResponse) throws -> String {
        let header = try #require(response.headers[.setCookie])
        return String(header.prefix { $0 != ";" })
    }

    @Test func sessionsLiveUpdateAndEndInTheCluster() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            let app = Application(router: makeRouter(persist))
            try await app.test(.router) { client in
                let login = try await client.execute(uri: "/login", method: .post)
                let cookie = try Self.cookie(from: login)
                #expect(cluster.store.count == 1)
                for expected in 1...3 {
                    let visit = try await client.execute(uri: "/visit", method: .post, headers: [.cookie: cookie])
                    #expect(String(buffer: visit.body) == "ada \(expected)")
                }
                let logout = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: cookie])
                #expect(logout.status == .ok)
                #expect(cluster.store.count == 0)
                let after = try await client.execute(uri: "/visit", method: .post, headers: [.cookie: cookie])
                #expect(after.status == .unauthorized)
            }
        }
    }
}
