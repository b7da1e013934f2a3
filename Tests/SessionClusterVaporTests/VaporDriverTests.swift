import ClusterTestSupport
import SessionCluster
import struct SessionCore.SessionID
import struct SessionCore.SessionDelta
import Testing
import VaporTesting

@testable import SessionClusterVapor

/// Vapor's sessions over the cluster driver: the call sequences of Vapor's own session
/// tests, what is saved, and what a client sees when something is wrong.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct VaporDriverTests {
    /// A Vapor app on `cluster` with the routes of Vapor's session tests and a few more.
    static func withApp(
        _ cluster: SessionCluster, configuration: SessionsConfiguration? = .cluster(),
        deadline: SessionClusterDeadlineMiddleware? = nil, _ body: (Application) async throws -> Void
    ) async throws {
        let app = try await Application.make(.testing)
        app.logger.logLevel = .warning  // not a line per request
        do {
            app.sessions.use(.cluster(cluster, configuration: configuration))
            if let deadline { app.middleware.use(deadline) }
            app.middleware.use(app.sessions.middleware)
            app.get("set") { req -> HTTPStatus in
                req.session.data["foo"] = "bar"
                return .ok
            }
            app.get("get") { req -> String in
                guard let foo = req.session.data["foo"] else { throw Abort(.badRequest) }
                return foo
            }
            app.get("del") { req -> String in
                req.session.destroy()
                return "del"
            }
            app.put(":side", ":value") { req -> HTTPStatus in
                req.session.data[req.parameters.get("side")!] = req.parameters.get("value")!
                return .noContent
            }
            app.get("both") { req -> String in
                "\(req.session.data["left"] ?? "-") \(req.session.data["right"] ?? "-")"
            }
            app.post("login", ":user") { req -> HTTPStatus in
                req.session.signIn(req.parameters.get("user")!)
                return .noContent
            }
            app.post("logout-everywhere") { req -> String in
                "\(try await req.logOutEverywhere())"
            }
            app.put("slow", ":value") { req -> HTTPStatus in
                try await Task.sleep(for: .milliseconds(400))
                req.session.data["left"] = req.parameters.get("value")!
                return .noContent
            }
            app.put("big") { req -> HTTPStatus in
                req.session.data["big"] = String(repeating: "x", count: 4_096)
                return .noContent
            }
            try await body(app)
        } catch {
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    static func cookie(_ response: TestingHTTPResponse) -> HTTPHeaders {
        var headers = HTTPHeaders()
        if let cookie = response.headers.setCookie?["vapor-session"] { headers.cookie = ["vapor-session": cookie] }
        return headers
    }

    /// The attributes of the session cookie `response` sets, after its `name=value`.
    static func cookieAttributes(_ response: TestingHTTPResponse) throws -> Set<String> {
        let header = try #require(response.headers[.setCookie].first { $0.hasPrefix("vapor-session=") }, "\(response.headers)")
        return Set(header.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// The attributes of the session cookie a first write sets, on an app whose provider got
    /// `configuration` (each app stops its cluster when it shuts down: one node per app).
    static func cookieAttributes(configuration: SessionsConfiguration?) async throws -> Set<String> {
        var attributes: Set<String> = []
        try await SingleNode.with { cluster in
            try await Self.withApp(cluster, configuration: configuration) { app in
                attributes = try Self.cookieAttributes(try await app.testing().sendRequest(.GET, "/set"))
            }
        }
        return attributes
    }

    @Test func theSessionCookieIsHttpOnlyLaxSecureAndEndsWithTheSession() async throws {
        let byDefault = try await Self.cookieAttributes(configuration: .cluster())
        #expect(byDefault.isSuperset(of: ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"]), "\(byDefault)")
        #expect(!byDefault.contains { $0.hasPrefix("Expires") || $0.hasPrefix("Max-Age") }, "\(byDefault)")
        let plain = try await Self.cookieAttributes(configuration: .cluster(secure: false))
        #expect(plain.isSuperset(of: ["HttpOnly", "SameSite=Lax"]), "\(plain)")
        #expect(!plain.contains("Secure"), "\(plain)")
        // nil keeps the application's own configuration (Vapor's default: neither HttpOnly nor Secure).
        let vapors = try await Self.cookieAttributes(configuration: nil)
        #expect(!vapors.contains("HttpOnly"), "\(vapors)")
    }

    /// Vapor's `testSessionDestroy`: set creates, destroy reads then deletes.
    @Test func setCreatesAndDestroyDeletesTheSessionInTheCluster() async throws {
        try await SingleNode.with { cluster in
            try await Self.withApp(cluster) { app in
                let set = try await app.testing().sendRequest(.GET, "/set")
                #expect(set.status == .ok)
                let headers = Self.cookie(set)
                let id = try SessionCore.SessionID(try #require(headers.cookie?["vapor-session"]).string)
                #expect(try await cluster.load(id)?["foo"]?.string == "bar")
                let del = try await app.testing().sendRequest(.GET, "/del", headers: headers)
                #expect(del.body.string == "del")
                #expect(try await cluster.load(id) == nil)
                #expect(cluster.store.count == 0)
            }
        }
    }

    /// Vapor's `testInvalidCookie`: a garbage cookie gets a fresh session, which then works.
    @Test func anInvalidCookieGetsAFreshSession() async throws {
        try await SingleNode.with { cluster in
            try await Self.withApp(cluster) { app in
                let none = try await app.testing().sendRequest(.GET, "/get")
                #expect(none.status == .badRequest)
                let set = try await app.testing().sendRequest(.GET, "/set", headers: ["Cookie": "vapor-session=foo"])
                #expect(set.status == .ok)
                let fresh = try #require(set.headers.setCookie?["vapor-session"])
                #expect(fresh.string != "foo")
                let get = try await app.testing().sendRequest(.GET, "/get", headers: Self.cookie(set))
                #expect(get.body.string == "bar")
            }
        }
    }

    /// Vapor calls update on every request; only what the request changed is written.
    @Test func aRequestThatChangesNothingWritesNothingAndOneChangeWritesOneKey() async throws {
        try await SingleNode.with { cluster in
            try await Self.withApp(cluster) { app in
                let set = try await app.testing().sendRequest(.GET, "/set")
                let headers = Self.cookie(set)
                let id = try SessionCore.SessionID(try #require(headers.cookie?["vapor-session"]).string)
                _ = try await app.testing().sendRequest(.PUT, "/left/1", headers: headers)
                let before = try #require(cluster.store.snapshot(id))
                _ = try await app.testing().sendRequest(.GET, "/get", headers: headers)
                #expect(try #require(cluster.store.snapshot(id)).version == before.version)
                _ = try await app.testing().sendRequest(.PUT, "/right/2", headers: headers)
                let after = try #require(cluster.store.snapshot(id))
                let stamps = { (delta: SessionDelta) in Dictionary(delta.attributes.map { ($0.name, $0.stamp) }, uniquingKeysWith: max) }
                #expect(stamps(after).filter { stamps(before)[$0.key] != $0.value }.map(\.key) == ["right"])
            }
        }
    }

    @Test func aSignedInUserIsLoggedOutEverywhere() async throws {
        try await SingleNode.with { cluster in
            try await Self.withApp(cluster) { app in
                var cookies: [HTTPHeaders] = []
                for _ in 0..<2 {
                    let headers = Self.cookie(try await app.testing().sendRequest(.GET, "/set"))
                    _ = try await app.testing().sendRequest(.POST, "/login/ada", headers: headers)
                    cookies.append(headers)
                }
                #expect(try await cluster.sessions(of: "ada").count == 2)
                let out = try await app.testing().sendRequest(.POST, "/logout-everywhere", headers: cookies[1])
                #expect(out.body.string == "2")
                for headers in cookies {
                    #expect(try await app.testing().sendRequest(.GET, "/get", headers: headers).status == .badRequest)
                }
            }
        }
    }

    @Test func limitsAre413AndAnUnavailableClusterIs503WithRetryAfter() async throws {
        try await SingleNode.with(configure: { $0.limits.maxAttributeBytes = 1_024 }) { cluster in
            try await Self.withApp(cluster) { app in
                let big = try await app.testing().sendRequest(.PUT, "/big")
                #expect(big.status == .payloadTooLarge)
                #expect(cluster.store.count == 0)
            }
        }
        var configuration = SessionClusterConfiguration.local(id: "down")
        configuration.writeConcern = .local
        let down = try SessionCluster(configuration: configuration)
        let app = try await Application.make(.testing)
        app.sessions.use { _ in SessionClusterVaporDriver(cluster: down) }
        app.middleware.use(app.sessions.middleware)
        app.get("get") { req -> String in req.session.data["foo"] ?? "-" }
        let response = try await app.testing().sendRequest(
            .GET, "/get", headers: ["Cookie": "vapor-session=\(SessionCore.SessionID.random().text)"])
        #expect(response.status == .serviceUnavailable)
        #expect(response.headers.first(name: "Retry-After") == "1")
        try await app.asyncShutdown()
    }

    /// A request whose load balancer has given up (its deadline passed) writes nothing: not
    /// when it arrives late, and not when the route runs past the deadline before the save.
    @Test func aRequestPastItsDeadlineWritesNothing() async throws {
        try await SingleNode.with { cluster in
            let deadline = SessionClusterDeadlineMiddleware(budget: .milliseconds(300), nodeID: "h1")
            try await Self.withApp(cluster, deadline: deadline) { app in
                func start(_ offset: TimeInterval) -> HTTPHeaders {
                    ["X-Request-Start": "t=\(Date().timeIntervalSince1970 + offset)"]
                }
                let set = try await app.testing().sendRequest(.PUT, "/left/1", headers: start(0))
                #expect(set.status == .noContent)
                var headers = Self.cookie(set)
                let id = try SessionCore.SessionID(try #require(headers.cookie?["vapor-session"]).string)
                headers.add(contentsOf: start(-10))
                let late = try await app.testing().sendRequest(.PUT, "/left/2", headers: headers)
                #expect(late.status == .serviceUnavailable)
                headers = Self.cookie(set)
                headers.add(contentsOf: start(0))
                // The route outlasts the 300 ms budget: the driver's save reaches the owner too late.
                let slow = try await app.testing().sendRequest(.PUT, "/slow/3", headers: headers)
                #expect(slow.status == .serviceUnavailable)
                #expect(try await cluster.load(id)?["left"]?.string == "1")
                headers = Self.cookie(set)
                headers.add(contentsOf: ["X-Request-Start": "soon"])
                #expect(try await app.testing().sendRequest(.PUT, "/left/4", headers: headers).status == .badRequest)
                #expect(try await app.testing().sendRequest(.PUT, "/left/5", headers: Self.cookie(set)).status == .noContent)
                #expect(try await cluster.load(id)?["left"]?.string == "5")
            }
        }
    }

}

/// 1,000 pairs of concurrent requests; run apart from the other socket tests (Makefile).
@Suite(.timeLimit(.minutes(3)))
struct VaporConcurrentRequestTests {
    /// Sends a request again after a 503, as a client honouring `Retry-After` would: a test
    /// machine this busy may lose a lease for a moment, and an unacknowledged change is not a
    /// lost one.
    static func retryingUnavailable(
        _ tester: any TestingApplicationTester, _ method: HTTPMethod, _ path: String, headers: HTTPHeaders = [:]
    ) async throws -> TestingHTTPResponse {
        var response = try await tester.sendRequest(method, path, headers: headers)
        for _ in 0..<20 where response.status == .serviceUnavailable {
            try await Task.sleep(for: .milliseconds(100))
            response = try await tester.sendRequest(method, path, headers: headers)
        }
        return response
    }

    /// 1,000 pairs of concurrent requests on one session, one through each node, each
    /// changing its own key: no change is lost.
    @Test func concurrentRequestsThroughTwoNodesLoseNoChange() async throws {
        try await TwoNodes.with { first, second in
            try await VaporDriverTests.withApp(first) { a in
                try await VaporDriverTests.withApp(second) { b in
                    let (left, right) = (try a.testing(), try b.testing())
                    let headers = VaporDriverTests.cookie(try await Self.retryingUnavailable(left, .GET, "/set"))
                    var lost: [Int] = []
                    for pair in 1...1_000 {
                        async let l = Self.retryingUnavailable(left, .PUT, "/left/\(pair)", headers: headers)
                        async let r = Self.retryingUnavailable(right, .PUT, "/right/\(pair)", headers: headers)
                        let (ls, rs) = try await (l.status, r.status)
                        #expect(ls == .noContent && rs == .noContent, "pair \(pair): \(ls) \(rs)")
                        let both = try await Self.retryingUnavailable(left, .GET, "/both", headers: headers).body.string
                        if both != "\(pair) \(pair)" { lost.append(pair) }
                    }
                    #expect(lost.count == 0, "\(lost.count) of 1000 pairs lost a change, first \(lost.prefix(5))")
                }
            }
        }
    }
}
