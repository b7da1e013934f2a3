import Foundation
import SessionCore
import Testing

@testable import SessionClusterHummingbird

struct JSONMembersTests {
    struct Profile: Codable, Equatable {
        var name: String
        var tags: [String]
        var address: Address?
        var score: Double
        var active: Bool
    }

    struct Address: Codable, Equatable {
        var street: String
        var notes: [String: Int]
    }

    @Test func eachTopLevelKeyIsOneAttributeAndTheValueRoundTrips() throws {
        let profile = Profile(
            name: "Ada \"the first\" {,}", tags: ["a,b", "}{", "é\u{1F600}"],
            address: Address(street: "1 Loop, \\ Road", notes: ["x": 1, "y,z": 2]), score: 0.1, active: true)
        let attributes = try JSONMembers.attributes(of: profile)
        #expect(Set(attributes.keys) == ["name", "tags", "address", "score", "active"])
        #expect(attributes.values.allSatisfy { $0.encoding == .json })
        let decoded = try JSONDecoder().decode(Profile.self, from: Data(try JSONMembers.json(of: attributes)))
        #expect(decoded == profile)
    }

    @Test func aNilOptionalIsNoAttribute() throws {
        let attributes = try JSONMembers.attributes(
            of: Profile(name: "b", tags: [], address: nil, score: 1, active: false))
        #expect(attributes["address"] == nil)
        #expect(attributes.count == 4)
    }

    @Test func keysNeedingEscapesSurvive() throws {
        let value = ["quote\"key": 1, "slash\\key": 2, "": 3]
        let attributes = try JSONMembers.attributes(of: value)
        #expect(Set(attributes.keys) == ["quote\"key", "slash\\key", ""])
        let decoded = try JSONDecoder().decode([String: Int].self, from: Data(try JSONMembers.json(of: attributes)))
        #expect(decoded == value)
    }

    @Test func valuesThatAreNotObjectsAreStoredWhole() throws {
        for attributes in [
            try JSONMembers.attributes(of: "Persist"), try JSONMembers.attributes(of: [1, 2, 3]),
            try JSONMembers.attributes(of: 42),
        ] {
            #expect(attributes.count == 1)
            #expect(attributes[JSONMembers.wholeValueName]?.encoding == .raw)
        }
        let text = try JSONMembers.attributes(of: "Persist")
        #expect(try JSONDecoder().decode(String.self, from: Data(try JSONMembers.json(of: text))) == "Persist")
    }
}
