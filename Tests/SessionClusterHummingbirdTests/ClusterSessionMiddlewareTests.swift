import Foundation
import Hummingbird
import HummingbirdAuth
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import struct SessionCore.SessionDelta
import Testing

@testable import SessionClusterHummingbird

/// Our own middleware: the request context holds the session as loaded, and only what the
/// route changed is saved.
@Suite(.timeLimit(.minutes(1)))
struct ClusterSessionMiddlewareTests {
    typealias Context = BasicClusterSessionRequestContext

    static func makeRouter(_ cluster: SessionCluster, serializer: any SessionSerializer = JSONSessionSerializer()) -> Router<Context> {
        let router = Router(context: Context.self)
        router.add(middleware: ClusterSessionMiddleware(cluster: cluster, serializer: serializer))
        router.post("/login/:user") { _, context -> HTTPResponse.Status in
            context.session.setPrincipal(try context.parameters.require("user"))
            context.session.rotateID()
            return .noContent
        }
        router.post("/cart/:item") { _, context -> String in
            var cart = context.session.get("cart", as: [String].self) ?? []
            cart.append(try context.parameters.require("item"))
            try context.session.set("cart", cart)
            return cart.joined(separator: ",")
        }
        router.put("/field/:name/:value") { _, context -> HTTPResponse.Status in
            guard context.session.exists else { throw HTTPError(.unauthorized) }
            try context.session.set(try context.parameters.require("name"), try context.parameters.require("value"))
            return .noContent
        }
        router.get("/field/:name") { _, context -> String in
            context.session.get(try context.parameters.require("name"), as: String.self) ?? "-"
        }
        router.get("/whoami") { _, context -> String in
            context.session.principal ?? "nobody"
        }
        router.post("/logout-everywhere") { _, context -> HTTPResponse.Status in
            context.session.logOutEverywhere()
            return .noContent
        }
        router.post("/logout") { _, context -> HTTPResponse.Status in
            context.session.invalidate()
            return .noContent
        }
        router.put("/big") { request, context -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 4 << 20)
            context.session.setAttribute("big", AttributeValue(encoding: .raw, bytes: Array(buffer: body)))
            return .noContent
        }
        return router
    }

    static func cookie(_ response: TestResponse) -> String? {
        response.headers[values: .setCookie].last.map { String($0.prefix { $0 != ";" }) }
    }

    static func sessionID(_ cookie: String) throws -> SessionID {
        try SessionID(cookie.split(separator: "=", maxSplits: 1)[1])
    }

    @Test func aSessionIsCreatedOnFirstWriteAndOnlyChangedAttributesAreSaved() async throws {
        try await SingleNode.with { cluster in
            try await Application(router: Self.makeRouter(cluster)).test(.router) { client in
                let none = try await client.execute(uri: "/whoami", method: .get)
                #expect(String(buffer: none.body) == "nobody")
                #expect(none.headers[.setCookie] == nil, "a request that stores nothing creates no session")
                #expect(cluster.store.count == 0)

                let first = try await client.execute(uri: "/cart/pear", method: .post)
                let setCookie = try #require(first.headers[.setCookie])
                #expect(setCookie.contains("HttpOnly") && setCookie.contains("Secure") && setCookie.contains("SameSite=Lax"))
                let cookie = try #require(Self.cookie(first))
                let id = try Self.sessionID(cookie)
                let headers: HTTPFields = [.cookie: cookie]
                _ = try await client.execute(uri: "/field/color/blue", method: .put, headers: headers)
                let before = try #require(cluster.store.snapshot(id))

                // Reading changes nothing: no write, no new version.
                let read = try await client.execute(uri: "/field/color", method: .get, headers: headers)
                #expect(String(buffer: read.body) == "blue")
                #expect(read.headers[.setCookie] == nil)
                #expect(try #require(cluster.store.snapshot(id)).version == before.version)

                // One changed attribute: one attribute's stamp moves.
                let cart = try await client.execute(uri: "/cart/plum", method: .post, headers: headers)
                #expect(String(buffer: cart.body) == "pear,plum")
                let after = try #require(cluster.store.snapshot(id))
                let stamps = { (delta: SessionDelta) in Dictionary(delta.attributes.map { ($0.name, $0.stamp) }, uniquingKeysWith: max) }
                let changed = stamps(after).filter { stamps(before)[$0.key] != $0.value }.map(\.key)
                #expect(changed == ["cart"])
            }
        }
    }

    /// With an affinity cookie, every new or rotated id comes with a cookie naming the node.
    @Test func anAffinityCookieNamesTheNodeThatMadeTheSession() async throws {
        try await SingleNode.with { cluster in
            let router = Router(context: Context.self)
            router.add(middleware: ClusterSessionMiddleware(cluster: cluster, affinityCookie: "SESSION_NODE"))
            router.post("/visit") { _, context -> HTTPResponse.Status in
                try context.session.set("visits", 1)
                return .noContent
            }
            try await Application(router: router).test(.router) { client in
                let response = try await client.execute(uri: "/visit", method: .post)
                let cookies = response.headers[values: .setCookie].map { String($0.prefix { $0 != ";" }) }
                #expect(cookies.contains("SESSION_NODE=h1"), "\(cookies)")
                #expect(cookies.contains { $0.hasPrefix("SESSION_ID=") })
            }
        }
    }

    @Test func signInRotatesTheIDAndLogOutEndsTheSession() async throws {
        try await SingleNode.with { cluster in
            try await Application(router: Self.makeRouter(cluster)).test(.router) { client in
                let cookie = try #require(Self.cookie(try await client.execute(uri: "/cart/pear", method: .post)))
                let login = try await client.execute(uri: "/login/ada", method: .post, headers: [.cookie: cookie])
                let rotated = try #require(Self.cookie(login))
                #expect(rotated != cookie)
                let who = try await client.execute(uri: "/whoami", method: .get, headers: [.cookie: rotated])
                #expect(String(buffer: who.body) == "ada")
                let old = try await client.execute(uri: "/whoami", method: .get, headers: [.cookie: cookie])
                #expect(String(buffer: old.body) == "nobody")
                #expect(Self.cookie(old) == "SESSION_ID=", "a cookie naming an ended session is cleared")

                let logout = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: rotated])
                #expect(logout.status == .noContent)
                #expect(Self.cookie(logout) == "SESSION_ID=")
                #expect(try await cluster.load(try Self.sessionID(rotated)) == nil)
                let after = try await client.execute(uri: "/field/color/red", method: .put, headers: [.cookie: rotated])
                #expect(after.status == .unauthorized)
            }
        }
    }

    @Test func logOutEverywhereEndsEverySessionOfTheUser() async throws {
        try await SingleNode.with { cluster in
            try await Application(router: Self.makeRouter(cluster)).test(.router) { client in
                var cookies: [String] = []
                for _ in 0..<3 {
                    let first = try #require(Self.cookie(try await client.execute(uri: "/cart/pear", method: .post)))
                    let login = try await client.execute(uri: "/login/ada", method: .post, headers: [.cookie: first])
                    cookies.append(try #require(Self.cookie(login)))
                }
                #expect(try await cluster.sessions(of: "ada").count == 3)
                let out = try await client.execute(uri: "/logout-everywhere", method: .post, headers: [.cookie: cookies[0]])
                #expect(Self.cookie(out) == "SESSION_ID=")
                for cookie in cookies {
                    let who = try await client.execute(uri: "/whoami", method: .get, headers: [.cookie: cookie])
                    #expect(String(buffer: who.body) == "nobody")
                }
                #expect(try await cluster.sessions(of: "ada").isEmpty)
            }
        }
    }

    @Test func expectedConditionsAreNeverA500() async throws {
        try await SingleNode.with(configure: { $0.store.limits.maxAttributeBytes = 1_024 }) { cluster in
            try await Application(router: Self.makeRouter(cluster)).test(.router) { client in
                let garbage = try await client.execute(uri: "/whoami", method: .get, headers: [.cookie: "SESSION_ID=%%garbage"])
                #expect(garbage.status == .ok)
                #expect(Self.cookie(garbage) == "SESSION_ID=")
                let big = try await client.execute(uri: "/big", method: .put, body: ByteBuffer(repeating: 7, count: 4_096))
                #expect(big.status == .contentTooLarge)
                #expect(cluster.store.count == 0)
            }
        }
        // A cluster that is not running cannot load: 503 with Retry-After.
        var configuration = SessionClusterConfiguration.local(id: "down")
        configuration.writeConcern = .local
        let down = try SessionCluster(configuration: configuration)
        try await Application(router: Self.makeRouter(down)).test(.router) { client in
            let cookie = "SESSION_ID=\(SessionID.random().text)"
            let response = try await client.execute(uri: "/whoami", method: .get, headers: [.cookie: cookie])
            #expect(response.status == .serviceUnavailable)
            #expect(response.headers[.retryAfter] == "1")
        }
    }

    /// A rolling deploy changed an attribute's type: the attribute is dropped, not the request.
    @Test func anAttributeThatNoLongerDecodesIsDroppedNotA500() async throws {
        try await SingleNode.with { cluster in
            let session = try await cluster.create(attributes: ["cart": AttributeValue(encoding: .json, bytes: Array(#"{"old":1}"#.utf8))])
            try await Application(router: Self.makeRouter(cluster)).test(.router) { client in
                let response = try await client.execute(
                    uri: "/cart/pear", method: .post, headers: [.cookie: "SESSION_ID=\(session.id.text)"])
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "pear")
            }
        }
    }
}

/// Two requests at once on one session, through two nodes, each changing its own field:
/// both changes survive, through each integration.
@Suite(.timeLimit(.minutes(3)))
struct ConcurrentRequestTests {
    static let pairs = 1_000

    /// Runs `pairs` pairs of concurrent requests on one session, `PUT /left/{n}` through one
    /// node and `PUT /right/{n}` through the other, reading both fields back through the
    /// first after each pair; expects no pair to lose a change.
    static func expectNoLostChanges<Context: RequestContext>(
        _ makeRouter: @escaping @Sendable (SessionCluster) -> Router<Context>
    ) async throws where Context.Source == ApplicationRequestContextSource {
        try await TwoNodes.with { first, second in
            try await Application(router: makeRouter(first)).test(.router) { a in
                try await Application(router: makeRouter(second)).test(.router) { b in
                    let started = try await Self.retryingUnavailable { try await a.execute(uri: "/start", method: .post) }
                    let headers: HTTPFields = [.cookie: try #require(ClusterSessionMiddlewareTests.cookie(started))]
                    var lost: [Int] = []
                    for pair in 1...pairs {
                        async let left = Self.retryingUnavailable { try await a.execute(uri: "/left/\(pair)", method: .put, headers: headers) }
                        async let right = Self.retryingUnavailable { try await b.execute(uri: "/right/\(pair)", method: .put, headers: headers) }
                        let (leftStatus, rightStatus) = try await (left.status, right.status)
                        #expect(leftStatus.code < 300 && rightStatus.code < 300, "pair \(pair): \(leftStatus) \(rightStatus)")
                        let both = try await Self.retryingUnavailable { try await a.execute(uri: "/both", method: .get, headers: headers) }
                        let body = String(buffer: both.body)
                        if body != "\(pair) \(pair)" { lost.append(pair) }
                    }
                    #expect(lost.count == 0, "\(lost.count) of \(pairs) pairs lost a change, first \(lost.prefix(5))")
                }
            }
        }
    }

    /// Sends a request again after a 5xx, as a client honouring `Retry-After` would: a test
    /// machine this busy may lose a lease for a moment, and an unacknowledged change is not a
    /// lost one. (hummingbird-auth's middleware answers 500 where ours answers 503.)
    static func retryingUnavailable(_ send: () async throws -> TestResponse) async throws -> TestResponse {
        var response = try await send()
        for _ in 0..<20 where response.status.code >= 500 {
            try await Task.sleep(for: .milliseconds(100))
            response = try await send()
        }
        return response
    }

    @Test func ourMiddlewareLosesNoChange() async throws {
        try await Self.expectNoLostChanges(Self.ourRouter)
    }

    static func ourRouter(_ cluster: SessionCluster) -> Router<BasicClusterSessionRequestContext> {
        let router = Router(context: BasicClusterSessionRequestContext.self)
        router.add(middleware: ClusterSessionMiddleware(cluster: cluster))
        router.post("/start") { _, context -> HTTPResponse.Status in
            for side in ["left", "right"] { try context.session.set(side, 0) }
            return .noContent
        }
        for side in ["left", "right"] {
            router.put("/\(side)/:value") { _, context -> HTTPResponse.Status in
                guard context.session.exists else { throw HTTPError(.unauthorized) }
                try context.session.set(side, try context.parameters.require("value", as: Int.self))
                return .noContent
            }
        }
        router.get("/both") { _, context -> String in
            "\(context.session.get("left", as: Int.self) ?? -1) \(context.session.get("right", as: Int.self) ?? -1)"
        }
        return router
    }

    struct Pair: Codable, Sendable {
        var left: Int
        var right: Int
    }

    static func authRouter(_ cluster: SessionCluster) -> Router<BasicSessionRequestContext<Pair, String>> {
        let router = Router(context: BasicSessionRequestContext<Pair, String>.self)
        router.add(middleware: SessionMiddleware(storage: SessionClusterPersistDriver(cluster: cluster)))
        router.post("/start") { _, context -> HTTPResponse.Status in
            context.sessions.createSession(Pair(left: 0, right: 0))
            return .noContent
        }
        for side in ["left", "right"] {
            router.put("/\(side)/:value") { _, context -> HTTPResponse.Status in
                guard var pair = context.sessions.session else { throw HTTPError(.unauthorized) }
                let value = try context.parameters.require("value", as: Int.self)
                if side == "left" { pair.left = value } else { pair.right = value }
                _ = context.sessions.updateSession(pair)
                return .noContent
            }
        }
        router.get("/both") { _, context -> String in
            guard let pair = context.sessions.session else { throw HTTPError(.unauthorized) }
            return "\(pair.left) \(pair.right)"
        }
        return router
    }

    @Test func hummingbirdAuthsMiddlewareOverOurDriverLosesNoChange() async throws {
        try await Self.expectNoLostChanges(Self.authRouter)
    }
}
