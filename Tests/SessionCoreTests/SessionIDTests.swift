import Testing
@testable import SessionCore

@Suite struct SessionIDTests {
    @Test func textFormRoundTripsAndIsURLSafe() throws {
        for _ in 0..<1000 {
            let id = SessionID.random()
            let text = id.text
            #expect(text.count == SessionID.textLength)
            #expect(text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(try SessionID(text) == id)
            #expect(SessionID(bytes: id.bytes) == id)
        }
    }

    @Test func randomIDsDoNotRepeat() {
        let ids = Set((0..<10_000).map { _ in SessionID.random() })
        #expect(ids.count == 10_000)
    }

    @Test func seededGeneratorsReplay() {
        var first = SeededRandom(seed: 7)
        var second = SeededRandom(seed: 7)
        #expect(SessionID.random(using: &first) == SessionID.random(using: &second))
    }

    @Test func garbageCookiesGetTypedErrors() {
        #expect(throws: SessionIDError.wrongLength(0)) { try SessionID("") }
        #expect(throws: SessionIDError.wrongLength(25)) { try SessionID(String(repeating: "A", count: 25)) }
        #expect(throws: SessionIDError.invalidCharacter(position: 3)) { try SessionID("AAA=AAAAAAAAAAAAAAAAAAAA") }
        #expect(throws: SessionIDError.wrongLength(48)) { try SessionID(String(repeating: "é", count: 24)) }
    }

    @Test func redactedFormHidesMostOfTheID() {
        let id = SessionID.random()
        #expect(id.redacted.count == 7)
        #expect(id.text.hasPrefix(String(id.redacted.dropLast())))
        #expect("\(id)" == id.redacted)
    }

    @Test func partitionIsStableAndInRange() {
        let id = SessionID(high: 1000, low: 1, tail: 2)
        #expect(id.partition(of: 271) == 1000 % 271)
        for _ in 0..<1000 { #expect((0..<271).contains(SessionID.random().partition(of: 271))) }
    }
}

