import Foundation

// `results/ours.json`, typed. Keys are snake_case (the encoder converts), as
// Benchmarks/peer/report.py reads them; a figure that failed is {"error": "..."}.

/// Every figure of one run, each under its key as `{"ours": ...}`.
struct BenchDocument: Codable {
    var read: Entry<ReadFigure>?
    var update: Entry<UpdateFigure>?
    var replBytes: Entry<BytesFigure>?
    var failover: Entry<FailoverFigure>?
    var memory: Entry<MemoryFigure>?
    var stateTransfer: Entry<TransferFigure>?
    var tls: Entry<TLSFigure>?
    var meta: Meta?

    /// The figures of `newer` replace these; the others stay (a run with `--only`).
    func merging(_ newer: BenchDocument) -> BenchDocument {
        BenchDocument(
            read: newer.read ?? read, update: newer.update ?? update, replBytes: newer.replBytes ?? replBytes,
            failover: newer.failover ?? failover, memory: newer.memory ?? memory,
            stateTransfer: newer.stateTransfer ?? stateTransfer, tls: newer.tls ?? tls, meta: newer.meta ?? meta)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }()

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()
}

/// One figure as measured, or why it could not be.
struct Entry<Figure: Codable>: Codable {
    var ours: Outcome<Figure>
}

enum Outcome<Figure: Codable>: Codable {
    case measured(Figure)
    case failed(String)

    private struct Failure: Codable { var error: String }

    init(from decoder: any Decoder) throws {
        if let failure = try? Failure(from: decoder) {
            self = .failed(failure.error)
        } else {
            self = .measured(try Figure(from: decoder))
        }
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .measured(let figure): try figure.encode(to: encoder)
        case .failed(let error): try Failure(error: error).encode(to: encoder)
        }
    }
}

/// A coding key made at run time, for objects whose keys are data ("1k", "plain", "3").
struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

struct ReadFigure: Codable {
    var clients: Int
    var requests: Int
    var p50Us: Double
    var p99Us: Double
    var p999Us: Double
    var avgUs: Double
    var ops: Double
    var touch: Bool
}

/// One replicated-update run.
struct UpdateRun: Codable {
    var ops: Double
    var updates: Int
    var errors: Int
    var errorsByKind: [String: Int]
    var writers: Int
    var cpuUsPerOp: Double
    var framesPerOp: Double
    var seconds: Double
    var p50Us: Double
    var p99Us: Double
}

/// The runs of one session size, by shape, with each shape's ops/s beside them
/// (`ops` for the plain shape, `ops_<shape>` for the others), as the report reads them.
struct UpdateSize: Codable {
    var runs: [String: UpdateRun] = [:]

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: DynamicKey.self)
        for key in container.allKeys where !key.stringValue.hasPrefix("ops") {
            runs[key.stringValue] = try container.decode(UpdateRun.self, forKey: key)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        for (shape, run) in runs {
            try container.encode(run, forKey: DynamicKey(shape))
            try container.encode(run.ops, forKey: DynamicKey(shape == "plain" ? "ops" : "ops_\(shape)"))
        }
    }
}

struct UpdateFigure: Codable {
    var mode: String
    var keyspace: Int
    var valueBytes: Int
    /// By session size: "1k", "4k".
    var sizes: [String: UpdateSize]

    private enum Fixed: String, CaseIterable { case mode, keyspace, valueBytes = "value_bytes" }

    init(mode: String, keyspace: Int, valueBytes: Int, sizes: [String: UpdateSize]) {
        self.mode = mode
        self.keyspace = keyspace
        self.valueBytes = valueBytes
        self.sizes = sizes
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: DynamicKey.self)
        mode = try container.decode(String.self, forKey: DynamicKey(Fixed.mode.rawValue))
        keyspace = try container.decode(Int.self, forKey: DynamicKey(Fixed.keyspace.rawValue))
        valueBytes = try container.decode(Int.self, forKey: DynamicKey(Fixed.valueBytes.rawValue))
        sizes = [:]
        let fixed = Set(Fixed.allCases.map(\.rawValue))
        for key in container.allKeys where !fixed.contains(key.stringValue) {
            sizes[key.stringValue] = try container.decode(UpdateSize.self, forKey: key)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: DynamicKey.self)
        try container.encode(mode, forKey: DynamicKey(Fixed.mode.rawValue))
        try container.encode(keyspace, forKey: DynamicKey(Fixed.keyspace.rawValue))
        try container.encode(valueBytes, forKey: DynamicKey(Fixed.valueBytes.rawValue))
        for (size, entry) in sizes { try container.encode(entry, forKey: DynamicKey(size)) }
    }
}

/// Bytes per update at one cluster size under one load shape.
struct BytesRun: Codable {
    var shape: String
    var nodes: Int
    var updates: Int
    var writers: Int
    var errors: Int
    var grossBytes: Double
    var idleBytesPerS: Double
    var busyS: Double
    var updateS: Double
    var bytesPerUpdate: Double
    /// Messages sent per update, by kind.
    var sentPerUpdate: [String: Double]
}

struct BytesFigure: Codable {
    /// The default shape at N = 3.
    var bytesPerUpdate: Double?
    var runs: [BytesRun]
    var replicas: Int
    var valueBytes: Int
    var shapes: [String: String]
    /// Bytes per update by N, per shape.
    var byN: [String: Double]
    var byNP16: [String: Double]
    var byNSingle: [String: Double]

    private enum CodingKeys: String, CodingKey {
        case bytesPerUpdate, runs, replicas, valueBytes, shapes
        case byN = "by_n"
        case byNP16 = "by_n_p16"
        case byNSingle = "by_n_single"
    }
}

struct FailoverRun: Codable {
    var outageS: Double?
    var firstAckS: Double?
    var lostWrites: Int?
    var ackedWrites: Int?
    var sessions: Int?
    var ownedByVictimCheck: Int?
    var victimWasLeader: Bool?
    var viewChangeS: Double?
    var newWriteS: Double?
    var error: String?
}

struct FailoverFigure: Codable {
    var medianOutageS: Double?
    var lostWritesTotal: Int
    var runs: [FailoverRun]
    var completedRuns: Int
    var setup: String
}

struct MemoryRun: Codable {
    var sessions: Int
    var stored: Int
    var rssGrowth: Int
    var bytesPerSession: Double
    var loadS: Double
}

struct MemoryFigure: Codable {
    var bytesPerSession: Double?
    var payloadBytes: Int
    var payloadKvBytes: Int
    var runs: [MemoryRun]
}

struct TransferFigure: Codable {
    var sessions: Int
    /// Nil when the joiner did not receive everything in time.
    var seconds: Double?
    var received: Int
    var sourceLoadS: Double
    var wireBytes: Int64
    var maxQueuedBytesPerPeer: Int
    var heartbeatMs: Int64
    var method: String
}

struct Meta: Codable {
    var commit: String
    var mode: String
    var durationS: Double
    var loadavgStart: [Double]
    var loadavgEnd: [Double]
    var only: String
    var notes: String
}

/// What mutual TLS on the peer links costs, each pair measured in the same run: the 1 KB
/// update rows on 3 in-process nodes, and the failover figure's outage.
struct TLSFigure: Codable {
    struct Pair: Codable {
        var without: Double
        var with: Double
        /// with / without.
        var ratio: Double
    }
    /// Updates per second, by load shape (`plain`, `p16`).
    var updateOps: [String: Pair]
    /// CPU microseconds per update, by load shape.
    var cpuUsPerOp: [String: Pair]
    /// Median seconds until every victim session is writable again.
    var failoverOutageS: Pair?
    var setup: String
}
