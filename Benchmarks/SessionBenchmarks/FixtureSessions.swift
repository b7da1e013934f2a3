import Foundation
import SessionCore

/// The realistic sample sessions of `Fixtures/sessions`, as attribute maps: each top-level
/// JSON value becomes one `.json` attribute in compact form.
enum FixtureSessions {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/sessions")

    static let all: [(name: String, attributes: [String: AttributeValue])] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().map { file in
            let data = try! Data(contentsOf: directory.appendingPathComponent(file))
            let object = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
            var attributes = [String: AttributeValue]()
            for (name, value) in object {
                let compact = try! JSONSerialization.data(
                    withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes])
                attributes[name] = AttributeValue(encoding: .json, bytes: Array(compact))
            }
            return (String(file.dropLast(5)), attributes)
        }
    }()

    /// About 1 KB: the signed-in user.
    static var oneKilobyte: [String: AttributeValue] {
        all.first { $0.name == "signed-in-user" }!.attributes
    }

    static func payloadBytes(_ attributes: [String: AttributeValue]) -> Int {
        attributes.reduce(0) { $0 + $1.key.utf8.count + $1.value.bytes.count }
    }

    /// A store holding `count` copies of `attributes` under fresh ids.
    static func store(count: Int, attributes: [String: AttributeValue], now: Timestamp) -> (SessionStore, [SessionID]) {
        let store = SessionStore()
        var ids = [SessionID]()
        for _ in 0..<count {
            var session = try! store.create(now: now)
            for (name, value) in attributes { session.setAttribute(name, value) }
            try! store.save(session, now: now)
            ids.append(session.id)
        }
        _ = store.drainDeltas(includeTouches: true)
        return (store, ids)
    }
}
