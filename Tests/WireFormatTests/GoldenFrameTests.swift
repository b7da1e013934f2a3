import ClusterProtocol
import Foundation
import Testing
@testable import WireFormat

/// The golden frames in `Fixtures/frames` pin the wire format: see its README.md.
@Suite struct GoldenFrameTests {
    let codec = SampleMessages.codec()

    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/frames")

    static var regenerating: Bool { ProcessInfo.processInfo.environment["REGENERATE_GOLDEN"] == "1" }

    /// Uncompressed frames must match to the byte. For compressed ones the header and the
    /// uncompressed body must match: the format is pinned, not liblz4's choice of matches.
    @Test(arguments: SampleMessages.all.map(\.name))
    func goldenFrameMatchesTheEncoderAndDecodes(name: String) throws {
        let message = SampleMessages.message(try #require(FrameType.allCases.first { "\($0)" == name }))
        let url = Self.directory.appendingPathComponent("\(name).bin")
        let encoded = codec.encode(message)
        if Self.regenerating {
            try FileManager.default.createDirectory(at: Self.directory, withIntermediateDirectories: true)
            try Data(encoded.bytes).write(to: url)
        }
        let golden = try [UInt8](Data(contentsOf: url))
        #expect(try codec.decode(golden) == message, "\(name).bin no longer decodes to its value")
        if encoded.compressed {
            let (goldenHeader, goldenBody) = try codec.unpack(golden)
            let (header, body) = try codec.unpack(encoded.bytes)
            #expect(goldenHeader.compressed && goldenHeader.version == header.version && goldenHeader.type == header.type)
            #expect(goldenBody == body, "\(name): the body encoding changed; see Fixtures/frames/README.md")
        } else {
            #expect(golden == encoded.bytes, "\(name): the frame encoding changed; see Fixtures/frames/README.md")
        }
    }

    /// A bundle as the first frame of a link: several messages, one header, one tag, the
    /// body compressed against the (still empty) link history.
    @Test func goldenBundleMatchesTheEncoderAndDecodes() throws {
        let messages = SampleMessages.bundle
        let url = Self.directory.appendingPathComponent("bundle.bin")
        let encoded = codec.encode(messages, over: LinkHistory())
        if Self.regenerating { try Data(encoded.bytes).write(to: url) }
        let golden = try [UInt8](Data(contentsOf: url))
        #expect(try golden.withUnsafeBytes { try codec.decode($0, over: LinkHistory()) } == messages)
        let (goldenHeader, goldenBody) = try codec.unpack(golden)
        let (header, body) = try codec.unpack(encoded.bytes)
        #expect(goldenHeader.compressed && goldenHeader.linked && goldenHeader.type == FrameCodec.bundleType)
        #expect(goldenHeader.version == header.version && goldenHeader.type == header.type)
        #expect(goldenBody == body, "bundle: the body encoding changed; see Fixtures/frames/README.md")
    }

    /// Skipped while regenerating: the files are being written concurrently.
    @Test(.enabled(if: !regenerating)) func goldenDirectoryHoldsOneFramePerFrameType() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path)
            .filter { $0.hasSuffix(".bin") }.map { String($0.dropLast(4)) }
        #expect(Set(names) == Set(FrameType.allCases.map { "\($0)" } + ["bundle"]))
    }
}
