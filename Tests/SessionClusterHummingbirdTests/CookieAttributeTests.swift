import ClusterTestSupport
import Hummingbird
import HummingbirdTesting
import SessionCluster
import Testing

@testable import SessionClusterHummingbird

/// The attributes of every cookie a response sets: what a browser is told about the
/// session id (hidden from scripts, not sent cross-site, HTTPS only unless configured).
@Suite(.timeLimit(.minutes(1)))
struct CookieAttributeTests {
    typealias Context = BasicClusterSessionRequestContext

    /// The attributes of `header`, a Set-Cookie value, after its `name=value`.
    static func attributes(_ header: String) -> Set<String> {
        Set(header.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) })
    }

    /// Every Set-Cookie of `response` by cookie name.
    static func setCookies(_ response: TestResponse) -> [String: Set<String>] {
        Dictionary(
            response.headers[values: .setCookie].map { (String($0.prefix { $0 != "=" }), attributes($0)) },
            uniquingKeysWith: { $1 })
    }

    func withShop(cookie: SessionCookie, _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await SingleNode.with { cluster in
            let router = Router(context: Context.self)
            router.add(middleware: ClusterSessionMiddleware(cluster: cluster, cookie: cookie, affinityCookie: "SESSION_NODE"))
            router.post("/visit") { _, context -> HTTPResponse.Status in
                try context.session.set("visits", 1)
                return .noContent
            }
            router.post("/logout") { _, context -> HTTPResponse.Status in
                context.session.invalidate()
                return .noContent
            }
            try await Application(router: router).test(.router) { client in try await body(client) }
        }
    }

    @Test func sessionAndAffinityCookiesAreHttpOnlyLaxAndSecureByDefault() async throws {
        try await withShop(cookie: SessionCookie()) { client in
            let response = try await client.execute(uri: "/visit", method: .post)
            let cookies = Self.setCookies(response)
            for name in ["SESSION_ID", "SESSION_NODE"] {
                let attributes = try #require(cookies[name], "\(cookies)")
                #expect(attributes.isSuperset(of: ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"]), "\(name): \(attributes)")
                #expect(!attributes.contains { $0.hasPrefix("Expires") || $0.hasPrefix("Max-Age") }, "\(name): \(attributes)")
            }
        }
    }

    @Test func withoutSecureTheCookiesKeepHttpOnlyAndLax() async throws {
        try await withShop(cookie: SessionCookie(secure: false, sameSite: .strict)) { client in
            let response = try await client.execute(uri: "/visit", method: .post)
            let cookies = Self.setCookies(response)
            for name in ["SESSION_ID", "SESSION_NODE"] {
                let attributes = try #require(cookies[name], "\(cookies)")
                #expect(attributes.isSuperset(of: ["HttpOnly", "SameSite=Strict"]), "\(name): \(attributes)")
                #expect(!attributes.contains("Secure"), "\(name): \(attributes)")
            }
        }
    }

    @Test func theCookieThatEndsASessionHasTheSameAttributes() async throws {
        try await withShop(cookie: SessionCookie()) { client in
            let created = try await client.execute(uri: "/visit", method: .post)
            let cookie = try #require(created.headers[values: .setCookie].first { $0.hasPrefix("SESSION_ID=") }?.prefix { $0 != ";" })
            let ended = try await client.execute(uri: "/logout", method: .post, headers: [.cookie: String(cookie)])
            let attributes = try #require(Self.setCookies(ended)["SESSION_ID"])
            #expect(attributes.isSuperset(of: ["HttpOnly", "Secure", "SameSite=Lax", "Max-Age=0"]), "\(attributes)")
        }
    }

    @Test func sessionNodeRoutesSetAnHttpOnlyLaxCookieSecureUnlessTurnedOff() async throws {
        for secure in [true, false] {
            try await SingleNode.with { cluster in
                let router = Router()
                SessionClusterRoutes(cluster: cluster, secureCookie: secure).register(on: router)
                try await Application(router: router).test(.router) { client in
                    let created = try await client.execute(uri: "/session", method: .post)
                    let attributes = try #require(Self.setCookies(created)["SESSION_ID"])
                    #expect(attributes.isSuperset(of: ["HttpOnly", "SameSite=Lax", "Path=/"]), "\(attributes)")
                    #expect(attributes.contains("Secure") == secure, "\(attributes)")
                }
            }
        }
    }
}
