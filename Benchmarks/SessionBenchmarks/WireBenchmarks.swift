import Benchmark
import ClusterProtocol
import SessionCore
import WireFormat

/// Delta batches as replication sends them: realistic sessions from `Fixtures/sessions`,
/// each with one attribute changed since the last flush, plus snapshot batches as a state
/// transfer sends them.
enum WireFixtures {
    static let codec = FrameCodec(configuration: try! WireConfiguration(clusterKey: Array("benchmark-cluster-key-0123456789".utf8)))

    /// `count` update deltas, cycling through the fixture sessions, each changing the
    /// attribute a request most often changes (the last page, or the CSRF token).
    static func updateBatch(count: Int) -> ClusterMessage {
        let now = Timestamp(milliseconds: 1_000_000)
        var deltas = [SessionDelta]()
        for index in 0..<count {
            let fixture = FixtureSessions.all[index % FixtureSessions.all.count].attributes
            let name = fixture["last_page"] != nil ? "last_page" : "csrf_token"
            var value = fixture[name]!
            value.bytes.append(contentsOf: Array("?n=\(index)".utf8))
            deltas.append(SessionDelta(
                id: .random(), kind: .update, version: SessionVersion(rawValue: UInt64(index + 2)), previousVersion: SessionVersion(rawValue: UInt64(index + 1)), lastAccessedAt: now,
                attributes: [AttributeChange(name: name, stamp: SessionVersion(rawValue: UInt64(index + 2)), value: value)]))
        }
        return .deltaBatch(DeltaBatch(from: "n1", viewEpoch: 3, sequence: 42, deltas: deltas))
    }

    /// Whole sessions as a state transfer chunk carries them.
    static func snapshotChunk(count: Int) -> ClusterMessage {
        let now = Timestamp(milliseconds: 1_000_000)
        var snapshots = [SessionDelta]()
        for index in 0..<count {
            let fixture = FixtureSessions.all[index % FixtureSessions.all.count].attributes
            snapshots.append(SessionDelta(
                id: .random(), kind: .snapshot, version: 7, previousVersion: 7, lastAccessedAt: now,
                metadata: SessionMetadata(createdAt: now, maxInactiveMilliseconds: 1_800_000, stamp: 1),
                attributes: fixture.sorted { $0.key < $1.key }.map { AttributeChange(name: $0.key, stamp: 1, value: $0.value) }))
        }
        return .stateTransferChunk(StateTransferChunk(from: "n1", transferID: 1, index: 0, last: false, snapshots: snapshots))
    }

    static func payloadBytes(_ message: ClusterMessage) -> Int {
        switch message {
        case .deltaBatch(let batch): batch.deltas.reduce(0) { $0 + $1.payloadByteCount }
        case .stateTransferChunk(let chunk): chunk.snapshots.reduce(0) { $0 + $1.payloadByteCount }
        default: 0
        }
    }

    /// Prints what LZ4 does to each kind of batch: the figure the issue asks for.
    static func printCompressionRatios() {
        for (label, message) in [
            ("update batch, 256 deltas", updateBatch(count: 256)), ("state transfer chunk, 64 sessions", snapshotChunk(count: 64)),
        ] {
            let frame = codec.encode(message)
            let ratio = Double(frame.uncompressedBodyBytes) / Double(frame.bytes.count)
            print(
                "compression: \(label): attribute payload \(payloadBytes(message)) B, encoded body \(frame.uncompressedBodyBytes) B, "
                    + "frame on the wire \(frame.bytes.count) B, ratio \(String(format: "%.2f", ratio)):1")
        }
        for fixture in FixtureSessions.all {
            print("fixture \(fixture.name): \(FixtureSessions.payloadBytes(fixture.attributes)) B of attributes")
        }
    }
}

func wireBenchmarks() {
    WireFixtures.printCompressionRatios()
    for (label, message) in [
        ("update batch of 256 deltas", WireFixtures.updateBatch(count: 256)),
        ("state transfer chunk of 64 sessions", WireFixtures.snapshotChunk(count: 64)),
    ] {
        let encodedBodyBytes = WireFixtures.codec.encode(message).uncompressedBodyBytes
        // Throughput in encoded (uncompressed) body bytes: the MB/s of deltas a node can
        // encode, compress, authenticate, then verify, decompress and decode.
        Benchmark(
            "Encode + LZ4 + HMAC + decode, \(label) (\(encodedBodyBytes) B)",
            configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .one)
        ) { benchmark in
            for _ in benchmark.scaledIterations {
                let frame = WireFixtures.codec.encode(message)
                blackHole(try! WireFixtures.codec.decode(frame.bytes))
            }
        }
    }
}
