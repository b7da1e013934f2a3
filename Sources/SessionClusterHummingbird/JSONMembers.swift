import Foundation
import SessionCore

/// Splits a Codable value's JSON into one attribute per top-level key, and joins them back,
/// so that changing one field of a session changes (and replicates) one attribute.
///
/// The values are the encoder's own bytes, sliced, never re-serialised: what was encoded is
/// exactly what is decoded. A value that is not a JSON object (a string, a number, an
/// array) is stored whole under the empty name with the `.raw` encoding; object members use
/// `.json`, so the two never mix up.
enum JSONMembers {
    /// The name of the attribute that holds a value that is not a JSON object.
    static let wholeValueName = ""

    static func attributes<Value: Encodable>(of value: Value) throws -> [String: AttributeValue] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = Array(try encoder.encode(value))
        guard let members = members(of: json) else {
            return [wholeValueName: AttributeValue(encoding: .raw, bytes: json)]
        }
        var attributes: [String: AttributeValue] = [:]
        for member in members {
            attributes[member.name] = AttributeValue(encoding: .json, bytes: Array(member.value))
        }
        return attributes
    }

    /// The JSON text the attributes stand for: the whole value, or an object of the members.
    static func json(of attributes: [String: AttributeValue]) throws -> [UInt8] {
        if let whole = attributes[wholeValueName], whole.encoding == .raw { return whole.bytes }
        var json: [UInt8] = [UInt8(ascii: "{")]
        let encoder = JSONEncoder()
        for (index, name) in attributes.keys.sorted().enumerated() {
            if index > 0 { json.append(UInt8(ascii: ",")) }
            json.append(contentsOf: try encoder.encode(name))
            json.append(UInt8(ascii: ":"))
            json.append(contentsOf: attributes[name]!.bytes)
        }
        json.append(UInt8(ascii: "}"))
        return json
    }

    /// The members of a top-level JSON object, as (name, value bytes); nil when `json` is not
    /// an object. Expects valid JSON (an encoder's output).
    static func members(of json: [UInt8]) -> [(name: String, value: ArraySlice<UInt8>)]? {
        var index = skipWhitespace(json, 0)
        guard index < json.count, json[index] == UInt8(ascii: "{") else { return nil }
        index += 1
        var members: [(name: String, value: ArraySlice<UInt8>)] = []
        while true {
            index = skipWhitespace(json, index)
            guard index < json.count else { return nil }
            if json[index] == UInt8(ascii: "}") { return members }
            if json[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard json[index] == UInt8(ascii: "\"") else { return nil }
            let nameEnd = endOfString(json, index)
            guard nameEnd <= json.count, let name = try? JSONDecoder().decode(String.self, from: Data(json[index..<nameEnd]))
            else { return nil }
            index = skipWhitespace(json, nameEnd)
            guard index < json.count, json[index] == UInt8(ascii: ":") else { return nil }
            index = skipWhitespace(json, index + 1)
            let valueStart = index
            index = endOfValue(json, index)
            var valueEnd = index
            while valueEnd > valueStart, isWhitespace(json[valueEnd - 1]) { valueEnd -= 1 }
            members.append((name, json[valueStart..<valueEnd]))
        }
    }

    /// The index just past the string that starts at `start` (a quote).
    private static func endOfString(_ json: [UInt8], _ start: Int) -> Int {
        var index = start + 1
        while index < json.count {
            switch json[index] {
            case UInt8(ascii: "\\"): index += 2
            case UInt8(ascii: "\""): return index + 1
            default: index += 1
            }
        }
        return json.count + 1
    }

    /// The index of the `,` or `}` that ends the member value starting at `start`.
    private static func endOfValue(_ json: [UInt8], _ start: Int) -> Int {
        var depth = 0
        var index = start
        while index < json.count {
            switch json[index] {
            case UInt8(ascii: "\""):
                index = endOfString(json, index)
                continue
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: "}"):
                if depth == 0 { return index }
                depth -= 1
            case UInt8(ascii: ","):
                if depth == 0 { return index }
            default: break
            }
            index += 1
        }
        return min(index, json.count)
    }

    private static func skipWhitespace(_ json: [UInt8], _ start: Int) -> Int {
        var index = start
        while index < json.count, isWhitespace(json[index]) { index += 1 }
        return index
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
