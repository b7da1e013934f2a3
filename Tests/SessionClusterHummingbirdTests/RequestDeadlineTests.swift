import Foundation
import Hummingbird
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import SessionCore
import Testing

@testable import SessionClusterHummingbird

/// Requests under the load balancer's deadline (``RequestDeadlineMiddleware``), and
/// ``SessionCluster/withWriteDeadline(_:isolation:operation:)`` itself.
@Suite(.timeLimit(.minutes(1)))
struct RequestDeadlineTests {
    func withClient(_ body: @escaping @Sendable (any TestClientProtocol, SessionCluster) async throws -> Void) async throws {
        try await SingleNode.with { cluster in
            let router = Router()
            router.add(middleware: NodeHeaderMiddleware(nodeID: "h1"))
            router.add(middleware: RequestDeadlineMiddleware(RequestDeadline(budget: .seconds(2)), nodeID: "h1"))
            SessionClusterRoutes(cluster: cluster).register(on: router)
            // A route that outlasts the budget before it writes: the write carries the deadline.
            router.put("/slow/:id") { request, context -> HTTPResponse.Status in
                try await Task.sleep(for: .milliseconds(2_300))
                let id = try SessionID(try context.parameters.require("id"))
                do throws(SessionClusterError) {
                    try await cluster.update(id, changes: SessionChanges(updated: ["cart": AttributeValue(string: "slow")]))
                } catch {
                    throw SessionAPIError(error)
                }
                return .noContent
            }
            try await Application(router: router).test(.router) { client in try await body(client, cluster) }
        }
    }

    static func put(_ client: any TestClientProtocol, _ cookie: String, _ value: String, start: String?) async throws -> TestResponse {
        var headers: HTTPFields = [.cookie: cookie]
        if let start { headers[HTTPFields.Element.Name("X-Request-Start")!] = start }
        return try await client.execute(uri: "/session/attributes/cart", method: .put, headers: headers, body: ByteBuffer(string: value))
    }

    static func cart(_ client: any TestClientProtocol, _ cookie: String) async throws -> String {
        String(buffer: try await client.execute(uri: "/session/attributes/cart", method: .get, headers: [.cookie: cookie]).body)
    }

    @Test func arrivalIsReadInSecondsMillisecondsOrMicroseconds() {
        let expected = Date(timeIntervalSince1970: 1_796_695_300.031)
        for value in ["t=1796695300.031", "1796695300.031", "t=1796695300031", "t=1796695300031000"] {
            let arrival = RequestStartDeadline.arrival(in: value)
            #expect(arrival.map { abs($0.timeIntervalSince(expected)) < 0.000_5 } == true, "\(value)")
        }
        for garbage in ["", "t=", "soon", "t=-5", "t=nan", "t=inf", "1e400"] {
            #expect(RequestStartDeadline.arrival(in: garbage) == nil, "\(garbage)")
        }
    }

    @Test func aRequestWithinItsDeadlineWritesAndOnePastItChangesNothing() async throws {
        try await withClient { client, _ in
            let cookie = try await SessionRoutesTests.createSession(client)
            let now = Date().timeIntervalSince1970
            #expect(try await Self.put(client, cookie, "fresh", start: "t=\(now)").status == .noContent)
            #expect(try await Self.cart(client, cookie) == "fresh")
            // Late: the route runs, but its write reaches the owner past the deadline.
            let stale = try await Self.put(client, cookie, "stale", start: "t=\(now - 10)")
            #expect(stale.status == .serviceUnavailable)
            #expect(try SessionRoutesTests.error(stale).error == "deadline_exceeded")
            #expect(stale.headers[.retryAfter] == "1")
            #expect(try await Self.cart(client, cookie) == "fresh")
            // A late read is served.
            let read = try await client.execute(
                uri: "/session/attributes/cart", method: .get,
                headers: [.cookie: cookie, HTTPFields.Element.Name("X-Request-Start")!: "t=\(now - 10)"])
            #expect(read.status == .ok)
            #expect(String(buffer: read.body) == "fresh")
            // Without the header there is no deadline.
            #expect(try await Self.put(client, cookie, "no header", start: nil).status == .noContent)
            #expect(try await Self.cart(client, cookie) == "no header")
        }
    }

    @Test func aMalformedRequestStartIsRefusedWith400() async throws {
        try await withClient { client, _ in
            let cookie = try await SessionRoutesTests.createSession(client)
            let response = try await Self.put(client, cookie, "x", start: "yesterday")
            #expect(response.status == .badRequest)
            #expect(try SessionRoutesTests.error(response).error == "request_start_malformed")
            let get = try await client.execute(uri: "/session/attributes/cart", method: .get, headers: [.cookie: cookie])
            #expect(get.status == .notFound, "nothing was written")
        }
    }

    @Test func aWriteUnderAPassedDeadlineIsRefusedUnappliedAndTheEarlierDeadlineWins() async throws {
        try await SingleNode.with { cluster in
            let session = try await cluster.create(attributes: ["cart": AttributeValue(string: "1 pear")])
            await #expect(throws: SessionClusterError.deadlineExceeded) {
                try await SessionCluster.withWriteDeadline(Date(timeIntervalSinceNow: -0.001)) {
                    try await cluster.update(session.id, changes: SessionChanges(updated: ["cart": AttributeValue(string: "late")]))
                }
            }
            // A later deadline nested inside a passed one does not lift it.
            await #expect(throws: SessionClusterError.deadlineExceeded) {
                try await SessionCluster.withWriteDeadline(Date(timeIntervalSinceNow: -0.001)) {
                    try await SessionCluster.withWriteDeadline(Date(timeIntervalSinceNow: 60)) {
                        try await cluster.update(session.id, changes: SessionChanges(updated: ["cart": AttributeValue(string: "late")]))
                    }
                }
            }
            #expect(try await cluster.load(session.id)?.attributes["cart"]?.string == "1 pear")
            try await SessionCluster.withWriteDeadline(Date(timeIntervalSinceNow: 60)) {
                try await cluster.update(session.id, changes: SessionChanges(updated: ["cart": AttributeValue(string: "2 pears")]))
            }
            #expect(try await cluster.load(session.id)?.attributes["cart"]?.string == "2 pears")
        }
    }

    @Test func aRouteThatOutlastsTheBudgetWritesNothing() async throws {
        try await withClient { client, _ in
            let cookie = try await SessionRoutesTests.createSession(client)
            #expect(try await Self.put(client, cookie, "before", start: nil).status == .noContent)
            let id = String(cookie.dropFirst("SESSION_ID=".count))
            let slow = try await client.execute(
                uri: "/slow/\(id)", method: .put,
                headers: [HTTPFields.Element.Name("X-Request-Start")!: "t=\(Date().timeIntervalSince1970)"])
            #expect(slow.status == .serviceUnavailable)
            #expect(try SessionRoutesTests.error(slow).error == "deadline_exceeded")
            #expect(try await Self.cart(client, cookie) == "before")
        }
    }
}
