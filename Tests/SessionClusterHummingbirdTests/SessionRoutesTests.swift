import Foundation
import Hummingbird
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import Testing

@testable import SessionClusterHummingbird

/// The HTTP contract of `session-node`, through Hummingbird's test client.
@Suite(.timeLimit(.minutes(1)))
struct SessionRoutesTests {
    static let maxAttributeBytes = 1024
    static let signInToken = "backend-secret"

    func withClient(_ body: @escaping @Sendable (any TestClientProtocol, SessionCluster) async throws -> Void) async throws {
        try await SingleNode.with(configure: { $0.limits.maxAttributeBytes = Self.maxAttributeBytes }) { cluster in
            let router = Router()
            router.add(middleware: NodeHeaderMiddleware(nodeID: "h1"))
            SessionClusterRoutes(cluster: cluster, signInToken: Self.signInToken).register(on: router)
            try await Application(router: router).test(.router) { client in try await body(client, cluster) }
        }
    }

    struct Created: Decodable {
        var id: String
    }

    struct ErrorBody: Decodable {
        var error: String
        var message: String
    }

    /// POST /session; returns the `Cookie` header value for the new session.
    static func createSession(_ client: any TestClientProtocol) async throws -> String {
        let response = try await client.execute(uri: "/session", method: .post)
        #expect(response.status == .created)
        let id = try JSONDecoder().decode(Created.self, from: Data(buffer: response.body)).id
        let setCookie = try #require(response.headers[.setCookie])
        #expect(setCookie.hasPrefix("SESSION_ID=\(id)"))
        return "SESSION_ID=\(id)"
    }

    static func error(_ response: TestResponse) throws -> ErrorBody {
        try JSONDecoder().decode(ErrorBody.self, from: Data(buffer: response.body))
    }

    @Test func createdSessionStoresReadsAndRemovesAttributes() async throws {
        try await withClient { client, _ in
            let cookie = try await Self.createSession(client)
            let put = try await client.execute(
                uri: "/session/attributes/cart", method: .put, headers: [.cookie: cookie], body: ByteBuffer(string: "2 pears"))
            #expect(put.status == .noContent)
            let get = try await client.execute(uri: "/session/attributes/cart", method: .get, headers: [.cookie: cookie])
            #expect(get.status == .ok)
            #expect(String(buffer: get.body) == "2 pears")
            let all = try await client.execute(uri: "/session", method: .get, headers: [.cookie: cookie])
            #expect(try JSONDecoder().decode([String: String].self, from: Data(buffer: all.body)) == ["cart": "2 pears"])
            let delete = try await client.execute(uri: "/session/attributes/cart", method: .delete, headers: [.cookie: cookie])
            #expect(delete.status == .noContent)
            let missing = try await client.execute(uri: "/session/attributes/cart", method: .get, headers: [.cookie: cookie])
            #expect(missing.status == .notFound)
        }
    }

    @Test func invalidatedSessionGives401() async throws {
        try await withClient { client, _ in
            let cookie = try await Self.createSession(client)
            let delete = try await client.execute(uri: "/session", method: .delete, headers: [.cookie: cookie])
            #expect(delete.status == .noContent)
            let after = try await client.execute(uri: "/session", method: .get, headers: [.cookie: cookie])
            #expect(after.status == .unauthorized)
            #expect(try Self.error(after).error == "session_unknown")
            let write = try await client.execute(
                uri: "/session/attributes/a", method: .put, headers: [.cookie: cookie], body: ByteBuffer(string: "x"))
            #expect(write.status == .unauthorized)
        }
    }

    @Test func rotationKeepsAttributesUnderANewCookieAndRetiresTheOld() async throws {
        try await withClient { client, _ in
            let cookie = try await Self.createSession(client)
            _ = try await client.execute(
                uri: "/session/attributes/role", method: .put, headers: [.cookie: cookie], body: ByteBuffer(string: "admin"))
            let rotate = try await client.execute(uri: "/session/rotate", method: .post, headers: [.cookie: cookie])
            #expect(rotate.status == .ok)
            let newID = try JSONDecoder().decode(Created.self, from: Data(buffer: rotate.body)).id
            #expect(rotate.headers[.setCookie]?.hasPrefix("SESSION_ID=\(newID)") == true)
            #expect("SESSION_ID=\(newID)" != cookie)
            let new = try await client.execute(uri: "/session/attributes/role", method: .get, headers: [.cookie: "SESSION_ID=\(newID)"])
            #expect(String(buffer: new.body) == "admin")
            let old = try await client.execute(uri: "/session", method: .get, headers: [.cookie: cookie])
            #expect(old.status == .unauthorized)
        }
    }

    @Test func missingMalformedAndUnknownCookiesGive401WithAJSONError() async throws {
        try await withClient { client, _ in
            let missing = try await client.execute(uri: "/session", method: .get)
            #expect(missing.status == .unauthorized)
            #expect(try Self.error(missing).error == "session_missing")
            let malformed = try await client.execute(uri: "/session", method: .get, headers: [.cookie: "SESSION_ID=not-an-id"])
            #expect(malformed.status == .unauthorized)
            #expect(try Self.error(malformed).error == "session_malformed")
            let unknown = try await client.execute(
                uri: "/session", method: .get, headers: [.cookie: "SESSION_ID=\(SessionID.random().text)"])
            #expect(unknown.status == .unauthorized)
            #expect(try Self.error(unknown).error == "session_unknown")
        }
    }

    @Test func expiredSessionGives401() async throws {
        try await withClient { client, cluster in
            let session = try await cluster.create(maxInactive: .milliseconds(100))
            try await Task.sleep(for: .milliseconds(250))
            let response = try await client.execute(uri: "/session", method: .get, headers: [.cookie: "SESSION_ID=\(session.id.text)"])
            #expect(response.status == .unauthorized)
        }
    }

    @Test func valueOverTheLimitGives413() async throws {
        try await withClient { client, _ in
            let cookie = try await Self.createSession(client)
            let big = ByteBuffer(repeating: UInt8(ascii: "x"), count: Self.maxAttributeBytes + 1)
            let response = try await client.execute(uri: "/session/attributes/big", method: .put, headers: [.cookie: cookie], body: big)
            #expect(response.status == .contentTooLarge)
            #expect(try Self.error(response).error == "too_large")
            let fits = ByteBuffer(repeating: UInt8(ascii: "x"), count: Self.maxAttributeBytes)
            let ok = try await client.execute(uri: "/session/attributes/big", method: .put, headers: [.cookie: cookie], body: fits)
            #expect(ok.status == .noContent)
        }
    }

    @Test func aCreationFloodIsRefusedWith503AndRetryAfterOnceTheStoreIsFull() async throws {
        // A store with room for about 20 sessions of 4 KB: a loop of creates and writes gets
        // 503s with Retry-After, not a killed process; what was stored stays readable.
        let budget = 20 * (4_096 + SessionLimits.sessionOverheadBytes)
        try await SingleNode.with(configure: { $0.limits.maxStoreBytes = budget }) { cluster in
            let router = Router()
            SessionClusterRoutes(cluster: cluster, signInToken: nil).register(on: router)
            try await Application(router: router).test(.router) { client in
                var stored = [String]()
                var refusal: TestResponse?
                for _ in 0..<200 where refusal == nil {
                    let created = try await client.execute(uri: "/session", method: .post)
                    guard created.status == .created else {
                        refusal = created
                        break
                    }
                    let cookie = String(try #require(created.headers[.setCookie]).prefix { $0 != ";" })
                    let put = try await client.execute(
                        uri: "/session/attributes/blob", method: .put, headers: [.cookie: cookie],
                        body: ByteBuffer(repeating: UInt8(ascii: "x"), count: 4_000))
                    if put.status == .noContent { stored.append(cookie) } else { refusal = put }
                }
                let response = try #require(refusal)
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "1")
                #expect(try Self.error(response).error == "store_full")
                #expect((15...21).contains(stored.count), "\(stored.count) sessions stored")
                #expect(cluster.store.byteCount <= budget)
                for cookie in stored {
                    let get = try await client.execute(uri: "/session/attributes/blob", method: .get, headers: [.cookie: cookie])
                    #expect(get.status == .ok)
                }
            }
        }
    }

    @Test func everyResponseNamesTheNode() async throws {
        try await withClient { client, _ in
            for (uri, method) in [("/session", HTTPRequest.Method.post), ("/session", .get), ("/health", .get), ("/cluster", .get)] {
                let response = try await client.execute(uri: uri, method: method)
                #expect(response.headers[.init("X-Node")!] == "h1", "\(method) \(uri)")
            }
        }
    }

    @Test func clusterAndHealthDescribeTheNode() async throws {
        try await withClient { client, _ in
            _ = try await Self.createSession(client)
            let health = try await client.execute(uri: "/health", method: .get)
            #expect(health.status == .ok)
            let response = try await client.execute(uri: "/cluster", method: .get)
            #expect(response.status == .ok)
            let body = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
            #expect(body["node"] as? String == "h1")
            #expect(body["leader"] as? String == "h1")
            #expect(body["sessionCount"] as? Int == 1)
            #expect((body["members"] as? [[String: Any]])?.count == 1)
            #expect(body["term"] != nil && body["partitionsOwned"] != nil && body["partitionsBacked"] != nil)
        }
    }

    @Test func healthIs503BeforeTheNodeRuns() async throws {
        let cluster = try SessionCluster(configuration: .local(id: "h0"))
        let router = Router()
        router.add(middleware: NodeHeaderMiddleware(nodeID: "h0"))
        SessionClusterRoutes(cluster: cluster).register(on: router)
        try await Application(router: router).test(.router) { client in
            let response = try await client.execute(uri: "/health", method: .get)
            #expect(response.status == .serviceUnavailable)
            let create = try await client.execute(uri: "/session", method: .post)
            #expect(create.status == .serviceUnavailable)
        }
    }
}

extension SessionRoutesTests {
    struct Listed: Decodable {
        struct Entry: Decodable { var id: String }
        var principal: String
        var sessions: [Entry]
    }

    /// Sign in, list the user's sessions, log out everywhere.
    @Test func aSignedInUserListsAndEndsAllOfTheirSessions() async throws {
        try await withClient { client, _ in
            let phone = try await Self.createSession(client)
            let laptop = try await Self.createSession(client)
            for cookie in [phone, laptop] {
                let signIn = try await client.execute(
                    uri: "/session/principal", method: .put,
                    headers: [.cookie: cookie, .authorization: "Bearer \(Self.signInToken)"], body: ByteBuffer(string: "ada"))
                #expect(signIn.status == .noContent)
            }
            let anonymous = try await Self.createSession(client)
            // A client cannot sign itself in as someone else.
            for token in [nil, "Bearer guess"] {
                var headers: HTTPFields = [.cookie: anonymous]
                if let token { headers[.authorization] = token }
                let claimed = try await client.execute(
                    uri: "/session/principal", method: .put, headers: headers, body: ByteBuffer(string: "ada"))
                #expect(claimed.status == .forbidden)
            }
            let forbidden = try await client.execute(uri: "/session/principal/sessions", method: .get, headers: [.cookie: anonymous])
            #expect(forbidden.status == .forbidden)

            let list = try await client.execute(uri: "/session/principal/sessions", method: .get, headers: [.cookie: phone])
            let listed = try JSONDecoder().decode(Listed.self, from: Data(buffer: list.body))
            #expect(listed.principal == "ada" && listed.sessions.count == 2)
            #expect(listed.sessions.allSatisfy { $0.id.count < 12 }, "ids are redacted: a listing must not hand out bearer tokens")

            let out = try await client.execute(uri: "/session/principal/sessions", method: .delete, headers: [.cookie: phone])
            #expect(String(buffer: out.body) == #"{"ended":2}"#)
            for cookie in [phone, laptop] {
                #expect(try await client.execute(uri: "/session", method: .get, headers: [.cookie: cookie]).status == .unauthorized)
            }
            #expect(try await client.execute(uri: "/session", method: .get, headers: [.cookie: anonymous]).status == .ok)
        }
    }
}
