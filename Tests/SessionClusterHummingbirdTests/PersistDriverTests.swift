import Foundation
import Hummingbird
import HummingbirdTesting
import ClusterTestSupport
import SessionCluster
import Testing

@testable import SessionClusterHummingbird

/// Hummingbird's own `PersistTests`, behaviour by behaviour, against the cluster driver.
@Suite(.timeLimit(.minutes(1)))
struct PersistDriverTests {
    struct TestCodable: Codable, Sendable {
        let buffer: String
    }

    /// The routes of Hummingbird's PersistTests, over `persist`.
    func makeRouter(_ persist: SessionClusterPersistDriver) -> Router<BasicRequestContext> {
        let router = Router()
        router.put("/persist/:tag") { request, context -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: .max)
            try await persist.set(key: try context.parameters.require("tag"), value: String(buffer: buffer))
            return .ok
        }
        router.put("/persist/:tag/:time") { request, context -> HTTPResponse.Status in
            guard let time = context.parameters.get("time", as: Int.self) else { throw HTTPError(.badRequest) }
            let buffer = try await request.body.collect(upTo: .max)
            try await persist.set(key: try context.parameters.require("tag"), value: String(buffer: buffer), expires: .seconds(time))
            return .ok
        }
        router.get("/persist/:tag") { _, context -> String? in
            try await persist.get(key: try context.parameters.require("tag"), as: String.self)
        }
        router.get("/persist/:tag/ttl") { _, context -> String? in
            try await persist.getWithTTL(key: try context.parameters.require("tag"), as: String.self)?.ttl
                .map { String($0.components.seconds) }
        }
        router.delete("/persist/:tag") { _, context -> HTTPResponse.Status in
            try await persist.remove(key: try context.parameters.require("tag"))
            return .noContent
        }
        router.put("/create/:tag") { request, context -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: .max)
            do {
                try await persist.create(key: try context.parameters.require("tag"), value: String(buffer: buffer))
            } catch let error as PersistError where error == .duplicate {
                throw HTTPError(.conflict)
            }
            return .ok
        }
        router.put("/codable/:tag") { request, context -> HTTPResponse.Status in
            let buffer = try await request.body.collect(upTo: .max)
            try await persist.set(key: try context.parameters.require("tag"), value: TestCodable(buffer: String(buffer: buffer)))
            return .ok
        }
        router.get("/codable/:tag") { _, context -> String? in
            try await persist.get(key: try context.parameters.require("tag"), as: TestCodable.self)?.buffer
        }
        router.get("/invalid/:tag") { _, context -> String? in
            do {
                return try await persist.get(key: try context.parameters.require("tag"), as: String.self)
            } catch let error as PersistError where error == .invalidConversion {
                throw HTTPError(.badRequest)
            }
        }
        return router
    }

    func withClient(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        try await SingleNode.with { cluster in
            let app = Application(router: makeRouter(SessionClusterPersistDriver(cluster: cluster)))
            try await app.test(.router, body)
        }
    }

    @Test func setThenGet() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/persist/\(tag)", method: .put, body: ByteBuffer(string: "Persist")) { _ in }
            try await client.execute(uri: "/persist/\(tag)", method: .get) { response in
                #expect(String(buffer: response.body) == "Persist")
            }
        }
    }

    @Test func createThenGet() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/create/\(tag)", method: .put, body: ByteBuffer(string: "Persist")) { _ in }
            try await client.execute(uri: "/persist/\(tag)", method: .get) { response in
                #expect(String(buffer: response.body) == "Persist")
            }
        }
    }

    @Test func secondCreateOfAKeyFailsWithDuplicate() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/create/\(tag)", method: .put, body: ByteBuffer(string: "Persist")) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/create/\(tag)", method: .put, body: ByteBuffer(string: "Persist")) { response in
                #expect(response.status == .conflict)
            }
        }
    }

    @Test func secondSetOverwrites() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/persist/\(tag)", method: .put, body: ByteBuffer(string: "test1")) { _ in }
            try await client.execute(uri: "/persist/\(tag)", method: .put, body: ByteBuffer(string: "test2")) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/persist/\(tag)", method: .get) { response in
                #expect(String(buffer: response.body) == "test2")
            }
        }
    }

    @Test func expiredValueIsGoneAndOthersStay() async throws {
        try await withClient { client in
            let (tag1, tag2) = (UUID().uuidString, UUID().uuidString)
            try await client.execute(uri: "/persist/\(tag1)/0", method: .put, body: ByteBuffer(string: "ThisIsTest1")) { _ in }
            try await client.execute(uri: "/persist/\(tag2)/10", method: .put, body: ByteBuffer(string: "ThisIsTest2")) { _ in }
            try await Task.sleep(for: .seconds(1))
            try await client.execute(uri: "/persist/\(tag1)", method: .get) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/persist/\(tag2)", method: .get) { response in
                #expect(String(buffer: response.body) == "ThisIsTest2")
            }
        }
    }

    @Test func timeToLiveCountsDown() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/persist/\(tag)/10", method: .put, body: ByteBuffer(string: "ThisIsTest2")) { _ in }
            try await client.execute(uri: "/persist/\(tag)/ttl", method: .get) { response in
                let ttl = try #require(Int(String(buffer: response.body)))
                #expect(ttl <= 10 && ttl > 1)
            }
        }
    }

    @Test func setWithoutExpiryKeepsTheExpiryInstant() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            try await persist.set(key: "k", value: "one", expires: .seconds(1))
            try await Task.sleep(for: .milliseconds(300))
            try await persist.set(key: "k", value: "two")
            let ttl = try #require(try await persist.getWithTTL(key: "k", as: String.self)?.ttl)
            #expect(ttl <= .milliseconds(750))
            try await Task.sleep(for: .milliseconds(900))
            #expect(try await persist.get(key: "k", as: String.self) == nil)
        }
    }

    @Test func codableValueRoundTrips() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/codable/\(tag)", method: .put, body: ByteBuffer(string: "Persist")) { _ in }
            try await client.execute(uri: "/codable/\(tag)", method: .get) { response in
                #expect(String(buffer: response.body) == "Persist")
            }
        }
    }

    @Test func getAsAnotherTypeFailsWithInvalidConversion() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            try await persist.set(key: "test", value: TestCodable(buffer: "hello"))
            await #expect(throws: PersistError.invalidConversion) { try await persist.get(key: "test", as: String.self) }
            let app = Application(router: makeRouter(persist))
            try await app.test(.router) { client in
                try await client.execute(uri: "/invalid/test", method: .get) { response in
                    #expect(response.status == .badRequest)
                }
            }
        }
    }

    @Test func removedValueIsGone() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/persist/\(tag)", method: .put, body: ByteBuffer(string: "ThisIsTest1")) { _ in }
            try await client.execute(uri: "/persist/\(tag)", method: .delete) { _ in }
            try await client.execute(uri: "/persist/\(tag)", method: .get) { response in
                #expect(response.status == .noContent)
            }
        }
    }

    @Test func expiredKeyCanBeSetAgain() async throws {
        try await withClient { client in
            let tag = UUID().uuidString
            try await client.execute(uri: "/persist/\(tag)/0", method: .put, body: ByteBuffer(string: "ThisIsTest1")) { _ in }
            try await Task.sleep(for: .seconds(1))
            try await client.execute(uri: "/persist/\(tag)", method: .get) { response in
                #expect(response.status == .noContent)
            }
            try await client.execute(uri: "/persist/\(tag)/10", method: .put, body: ByteBuffer(string: "ThisIsTest1")) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/persist/\(tag)", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "ThisIsTest1")
            }
        }
    }

    @Test func removedKeyCanBeCreatedAgain() async throws {
        try await SingleNode.with { cluster in
            let persist = SessionClusterPersistDriver(cluster: cluster)
            for round in 0..<3 {
                try await persist.create(key: "again", value: "round \(round)")
                #expect(try await persist.get(key: "again", as: String.self) == "round \(round)")
                try await persist.remove(key: "again")
                #expect(try await persist.get(key: "again", as: String.self) == nil)
            }
        }
    }
}
