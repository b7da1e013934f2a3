import ArgumentParser
import Foundation
import NodeCommandLine
import SessionCluster
import Testing

/// `--cluster-key-file`: its two formats, its permissions, and refusing to start without it.
@Suite struct ClusterKeyFileTests {
    static let required = ["--id", "n1", "--http", "127.0.0.1:8081", "--bind", "127.0.0.1:7101"]

    @Test func withoutAKeyFileTheOptionsAreRefusedWithHowToCreateOne() {
        do {
            _ = try ClusterOptions.parse(Self.required)
            Issue.record("parsed without --cluster-key-file")
        } catch {
            let message = ClusterOptions.message(for: error)
            #expect(message.contains("--cluster-key-file"), "\(message)")
            #expect(message.contains("head -c 32 /dev/urandom | base64 > cluster.key; chmod 600 cluster.key"), "\(message)")
            #expect(message.contains("--insecure-development-key"), "\(message)")
        }
    }

    @Test func theDevelopmentFlagRunsOnTheDevelopmentKey() throws {
        let options = try ClusterOptions.parse(Self.required + ["--insecure-development-key"])
        let configuration = try options.configuration(logger: .init(label: "test"))
        #expect(configuration.clusterKeys == [ClusterKey(id: 0, bytes: SessionClusterConfiguration.developmentClusterKey)])
        #expect(throws: (any Error).self) {
            try ClusterOptions.parse(Self.required + ["--insecure-development-key", "--cluster-key-file", "/tmp/k"])
        }
    }

    @Test func aSingleKeyIsTheWholeFileTrimmedAsIDZero() throws {
        try withKeyFile("  c2VjcmV0LWtleS1vZi1hdC1sZWFzdC0xNi1ieXRlcw==\n\n") { path in
            let options = try ClusterOptions.parse(Self.required + ["--cluster-key-file", path])
            let configuration = try options.configuration(logger: .init(label: "test"))
            #expect(configuration.clusterKeys == [ClusterKey(id: 0, bytes: Array("c2VjcmV0LWtleS1vZi1hdC1sZWFzdC0xNi1ieXRlcw==".utf8))])
        }
    }

    @Test func linesOfIDAndKeyListTheSendingKeyFirst() throws {
        try withKeyFile("1:the-new-cluster-key-abcdefghij\n\n0: the-old-cluster-key-0123456789 \n") { path in
            let keys = try ClusterKeyFile.load(from: path)
            #expect(keys == [
                ClusterKey(id: 1, bytes: Array("the-new-cluster-key-abcdefghij".utf8)),
                ClusterKey(id: 0, bytes: Array("the-old-cluster-key-0123456789".utf8)),
            ])
        }
    }

    @Test func badKeyListsNameTheFileAndTheLine() {
        let long = "0123456789abcdefghij"
        let cases: [(String, ClusterKeyFileError)] = [
            ("", .empty(path: "k")),
            ("short", .tooShort(path: "k", id: 0, bytes: 5, minimum: 16)),
            ("1:\(long)\n2:short", .tooShort(path: "k", id: 2, bytes: 5, minimum: 16)),
            ("1:\(long)\n1:\(long)x", .badLine(path: "k", line: 2, reason: "key id 1 appears twice")),
            ("8:\(long)", .badLine(path: "k", line: 1, reason: "key id 8 is outside 0...7")),
            ("1:\(long)\n\(long)", .badLine(path: "k", line: 2, reason: "not ID:KEY")),
        ]
        for (text, expected) in cases {
            #expect(throws: expected, "\(text)") { try ClusterKeyFile.parse(text, path: "k") }
        }
    }

    @Test func aKeyFileOthersCanReadOrWriteIsRefusedWithTheChmodFix() throws {
        for mode: mode_t in [0o644, 0o640, 0o602, 0o660] {
            try withKeyFile("the-cluster-key-0123456789", mode: mode) { path in
                let options = try ClusterOptions.parse(Self.required + ["--cluster-key-file", path])
                #expect(throws: ClusterKeyFileError.permissions(path: path, mode: UInt32(mode))) {
                    try options.configuration(logger: .init(label: "test"))
                }
                let message = ClusterKeyFileError.permissions(path: path, mode: UInt32(mode)).description
                #expect(message.contains(path) && message.contains(String(mode, radix: 8)) && message.contains("chmod 600 \(path)"))
            }
        }
        try withKeyFile("the-cluster-key-0123456789", mode: 0o400) { path in
            let keys = try ClusterKeyFile.load(from: path)
            #expect(keys.count == 1)
        }
    }

    @Test func aMissingKeyFileNamesIt() {
        #expect(throws: ClusterKeyFileError.unreadable(path: "/nonexistent/cluster.key", reason: "No such file or directory")) {
            try ClusterKeyFile.load(from: "/nonexistent/cluster.key")
        }
    }
}

/// Runs `body` with the path of a fresh file holding `text` with permissions `mode`.
func withKeyFile(_ text: String, mode: mode_t = 0o600, _ body: (String) throws -> Void) throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cluster-key-\(UUID().uuidString)").path
    #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(chmod(path, mode) == 0)
    try body(path)
}
