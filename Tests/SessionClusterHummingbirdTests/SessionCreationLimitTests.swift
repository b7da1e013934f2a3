import Foundation
import Hummingbird
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import Synchronization
import Testing

@testable import SessionClusterHummingbird

/// A clock the test moves by hand, so that refills are exact and no test sleeps.
final class ManualClock: Sendable {
    private let elapsed = Mutex<Duration>(.zero)
    var now: @Sendable () -> Duration { { [self] in elapsed.withLock { $0 } } }
    func advance(by duration: Duration) { elapsed.withLock { $0 += duration } }
}

/// `POST /session` under a per-client ``SessionCreationLimit``, through Hummingbird's test client.
@Suite(.timeLimit(.minutes(1)))
struct SessionCreationLimitTests {
    static let rate = 3.0

    func withClient(
        trustForwardedFor: Bool, framework: TestingSetup = .router,
        _ body: @escaping @Sendable (any TestClientProtocol, ManualClock) async throws -> Void
    ) async throws {
        let clock = ManualClock()
        try await SingleNode.with { cluster in
            let limit = SessionCreationLimit(
                limiter: ClientRateLimiter(ratePerSecond: Self.rate, now: clock.now), trustForwardedFor: trustForwardedFor,
                nodeID: "h1")
            let router = Router(context: ClientAddressRequestContext.self)
            SessionClusterRoutes(cluster: cluster, creationLimit: limit).register(on: router)
            try await Application(router: router).test(framework) { client in try await body(client, clock) }
        }
    }

    static func create(_ client: any TestClientProtocol, from address: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let address { headers[SessionCreationLimit.forwardedFor] = address }
        return try await client.execute(uri: "/session", method: .post, headers: headers)
    }

    static func expectLimited(_ response: TestResponse, retryAfter: String = "1") throws {
        #expect(response.status == .tooManyRequests)
        #expect(response.headers[.retryAfter] == retryAfter)
        #expect(try SessionRoutesTests.error(response).error == "rate_limited")
    }

    @Test func aClientGets429AfterItsBurstAndCreatesAgainOnceTheBucketRefills() async throws {
        try await withClient(trustForwardedFor: true) { client, clock in
            for _ in 0..<3 { #expect(try await Self.create(client, from: "198.51.100.7").status == .created) }
            try Self.expectLimited(try await Self.create(client, from: "198.51.100.7"))
            // A third of a second gives back one token at 3 a second, and only one.
            clock.advance(by: .milliseconds(340))
            #expect(try await Self.create(client, from: "198.51.100.7").status == .created)
            try Self.expectLimited(try await Self.create(client, from: "198.51.100.7"))
            // A long pause refills the bucket to the burst, not beyond.
            clock.advance(by: .seconds(60))
            for _ in 0..<3 { #expect(try await Self.create(client, from: "198.51.100.7").status == .created) }
            try Self.expectLimited(try await Self.create(client, from: "198.51.100.7"))
        }
    }

    @Test func otherClientsAreUnaffectedAndTheFirstForwardedAddressIsTheClient() async throws {
        try await withClient(trustForwardedFor: true) { client, _ in
            for _ in 0..<3 { #expect(try await Self.create(client, from: "198.51.100.7").status == .created) }
            try Self.expectLimited(try await Self.create(client, from: "198.51.100.7"))
            // The same client behind another proxy hop is still the same client.
            try Self.expectLimited(try await Self.create(client, from: "198.51.100.7, 10.0.0.1"))
            for _ in 0..<3 { #expect(try await Self.create(client, from: "203.0.113.9").status == .created) }
            #expect(try await Self.create(client, from: "10.0.0.1, 198.51.100.7").status == .created)
            try Self.expectLimited(try await Self.create(client, from: "203.0.113.9"))
        }
    }

    @Test func withoutTrustTheForwardedHeaderIsIgnoredAndTheTCPPeerIsTheClient() async throws {
        try await withClient(trustForwardedFor: false, framework: .live) { client, _ in
            // A client that writes a new X-Forwarded-For each time is still one TCP peer.
            for i in 0..<3 { #expect(try await Self.create(client, from: "192.0.2.\(i)").status == .created) }
            try Self.expectLimited(try await Self.create(client, from: "192.0.2.99"))
            try Self.expectLimited(try await Self.create(client))
        }
    }

    @Test func otherRoutesAreNotLimited() async throws {
        try await withClient(trustForwardedFor: true) { client, _ in
            var cookie = ""
            for _ in 0..<3 {
                let created = try await Self.create(client, from: "198.51.100.7")
                cookie = try #require(created.headers[.setCookie]).components(separatedBy: ";")[0]
            }
            try Self.expectLimited(try await Self.create(client, from: "198.51.100.7"))
            for i in 0..<10 {
                let put = try await client.execute(
                    uri: "/session/attributes/a", method: .put,
                    headers: [.cookie: cookie, SessionCreationLimit.forwardedFor: "198.51.100.7"], body: ByteBuffer(string: "\(i)"))
                #expect(put.status == .noContent)
            }
        }
    }

    @Test func theClientTableIsBoundedAndForgetsTheLeastRecentlySeenFirst() {
        let clock = ManualClock()
        let limiter = ClientRateLimiter(ratePerSecond: 1, maxClients: 3, now: clock.now)
        #expect(limiter.admit("a") == .allowed)
        #expect(limiter.admit("a") == .limited(retryAfterSeconds: 1))
        #expect(limiter.admit("b") == .allowed)
        #expect(limiter.admit("c") == .allowed)
        // "a" was seen last: "b" is the least recently seen and goes when "d" comes.
        #expect(limiter.admit("a") == .limited(retryAfterSeconds: 1))
        #expect(limiter.admit("d") == .allowed)
        #expect(limiter.trackedClients == 3)
        #expect(limiter.admit("a") == .limited(retryAfterSeconds: 1))
        #expect(limiter.admit("b") == .allowed, "b was forgotten, so it starts from a full bucket")
        // A flood of new keys keeps the table at its bound.
        for i in 0..<10_000 { _ = limiter.admit("flood-\(i)") }
        #expect(limiter.trackedClients == 3)
        #expect(limiter.admit("flood-9999") == .limited(retryAfterSeconds: 1))
    }

    @Test func retryAfterIsTheWaitForOneToken() {
        let clock = ManualClock()
        let limiter = ClientRateLimiter(ratePerSecond: 0.25, now: clock.now)
        #expect(limiter.burst == 1)
        #expect(limiter.admit("a") == .allowed)
        #expect(limiter.admit("a") == .limited(retryAfterSeconds: 4))
        clock.advance(by: .seconds(3))
        #expect(limiter.admit("a") == .limited(retryAfterSeconds: 1))
        clock.advance(by: .seconds(1))
        #expect(limiter.admit("a") == .allowed)
    }

    @Test func aLongClientKeyIsCut() {
        let limiter = ClientRateLimiter(ratePerSecond: 1, now: ManualClock().now)
        let long = String(repeating: "x", count: ClientRateLimiter.maxKeyBytes)
        #expect(limiter.admit(long + "1") == .allowed)
        #expect(limiter.admit(long + "2") == .limited(retryAfterSeconds: 1))
    }
}
