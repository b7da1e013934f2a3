import Foundation
import Testing
@testable import SessionCore

@Suite struct SessionModelTests {
    struct Cart: Codable, Equatable {
        var items: [String]
        var total: Int
    }

    func freshSession() -> Session {
        Session(
            id: .random(), version: 1, createdAt: Timestamp(milliseconds: 0), lastAccessedAt: Timestamp(milliseconds: 0),
            maxInactiveMilliseconds: 1000)
    }

    @Test func typedAttributesRoundTripThroughTheSerializer() throws {
        var session = freshSession()
        try session.set("cart", Cart(items: ["book"], total: 12))
        #expect(try session.get("cart", as: Cart.self) == Cart(items: ["book"], total: 12))
        #expect(session["cart"]?.encoding == .json)
        #expect(try session.get("missing", as: Cart.self) == nil)
    }

    @Test func settingTheSameValueRecordsNoChange() throws {
        var session = Session(
            id: .random(), version: 3, createdAt: .zero, lastAccessedAt: .zero, maxInactiveMilliseconds: 1000,
            attributes: ["theme": AttributeValue(string: "dark")])
        session.setAttribute("theme", AttributeValue(string: "dark"))
        session.removeAttribute("never-set")
        #expect(!session.hasChanges)
        session.setAttribute("theme", AttributeValue(string: "light"))
        #expect(session.changes.updated["theme"] == AttributeValue(string: "light"))
    }

    @Test func removeAfterSetRecordsOnlyTheRemoval() {
        var session = Session(
            id: .random(), version: 1, createdAt: .zero, lastAccessedAt: .zero, maxInactiveMilliseconds: 1000,
            attributes: ["a": AttributeValue(string: "1")])
        session.setAttribute("a", AttributeValue(string: "2"))
        session.removeAttribute("a")
        #expect(session.changes.updated.isEmpty)
        #expect(session.changes.removed == ["a"])
    }

    @Test func undecodableAttributeThrowsATypedErrorInsteadOfCrashing() throws {
        var session = freshSession()
        session.setAttribute("cart", AttributeValue(encoding: .json, bytes: Array("{\"items\": 3}".utf8)))
        session.setAttribute("blob", AttributeValue(encoding: .raw, bytes: [1, 2, 3]))
        #expect(throws: AttributeDecodingError.self) { try session.get("cart", as: Cart.self) }
        do {
            _ = try session.get("blob", as: Cart.self)
            Issue.record("expected an encoding mismatch")
        } catch {
            #expect(error.storedEncoding == .raw)
            #expect(error.expectedEncoding == .json)
        }
    }

    @Test func idleAndAbsoluteTimeoutsBothExpire() {
        let idle = Session(
            id: .random(), version: 1, createdAt: .zero, lastAccessedAt: Timestamp(milliseconds: 500),
            maxInactiveMilliseconds: 1000)
        #expect(!idle.isExpired(at: Timestamp(milliseconds: 1499)))
        #expect(idle.isExpired(at: Timestamp(milliseconds: 1500)))
        let absolute = Session(
            id: .random(), version: 1, createdAt: .zero, lastAccessedAt: Timestamp(milliseconds: 900),
            maxInactiveMilliseconds: 10_000, absoluteDeadline: Timestamp(milliseconds: 1000))
        #expect(absolute.isExpired(at: Timestamp(milliseconds: 1000)))
    }

    /// `expiresAt` is the instant `isExpired` turns true: the earlier deadline, or none.
    @Test func expiresAtIsTheEarlierDeadline() {
        let last = Timestamp(Date(timeIntervalSince1970: 1_765_238_400.25))
        #expect(last.date == Date(timeIntervalSince1970: 1_765_238_400.25))
        let idle = Session(id: .random(), version: 1, createdAt: last, lastAccessedAt: last, maxInactiveMilliseconds: 30_000)
        #expect(idle.expiresAt == last + .seconds(30))
        #expect(idle.expiresAt! - last == .seconds(30))
        let capped = Session(
            id: .random(), version: 1, createdAt: last, lastAccessedAt: last, maxInactiveMilliseconds: 30_000,
            absoluteDeadline: last + .seconds(10))
        #expect(capped.expiresAt == last + .seconds(10))
        let never = Session(id: .random(), version: 1, createdAt: last, lastAccessedAt: last, maxInactiveMilliseconds: 0)
        #expect(never.expiresAt == nil)
        #expect(!never.isExpired(at: last + .seconds(86_400 * 365)))
        for session in [idle, capped] {
            let deadline = session.expiresAt!
            #expect(!session.isExpired(at: deadline + .milliseconds(-1)))
            #expect(session.isExpired(at: deadline))
            #expect(session.isExpired(at: Timestamp(deadline.date)))
        }
        // An idle timeout too long to add to the last access never expires.
        let endless = Session(id: .random(), version: 1, createdAt: last, lastAccessedAt: last, maxInactiveMilliseconds: .max)
        #expect(endless.expiresAt == nil)
        #expect(!endless.isExpired(at: last + .seconds(86_400 * 365)))
    }

    /// A timestamp survives the trip through `Date`, whose Double counts from 2001: in the
    /// 1970s, around 2038 and before 1970 too.
    @Test func timestampsRoundTripThroughDate() {
        for milliseconds: Int64 in [0, 1, 999, 123_456_789, 2_147_483_648_001, 2_150_000_000_123, 1_765_238_400_250, -1, -1001] {
            for step: Int64 in 0..<50 {
                let timestamp = Timestamp(milliseconds: milliseconds + step * 7)
                #expect(Timestamp(timestamp.date) == timestamp, "\(timestamp)")
            }
        }
    }
}
