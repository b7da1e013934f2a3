import Foundation
import NodeCommandLine
import SessionCluster

extension BenchFigures {
    /// Mutual TLS on the peer links against none, each row measured both ways in this run:
    /// the 1 KB update rows (50 writers over 3 nodes; 16 in flight per writer) and the
    /// failover figure's outage (median of `failoverRuns` each way).
    static func tls(
        fixture: BenchFixture, keyspace: Int, seconds: Double, failoverRuns: Int, directory: String
    ) async throws -> TLSFigure {
        let certificates = try DevelopmentCertificates.write(
            to: "\(directory)/tls-certificates", nodes: ["tls1", "tls2", "tls3", "failover-f1", "failover-f2", "failover-f3"])
        let shapes: [(key: String, writers: Int)] = [("plain", 50), ("p16", 800)]
        var ops: [String: (without: Double, with: Double)] = [:]
        var cpu: [String: (without: Double, with: Double)] = [:]
        for secure in [false, true] {
            let cluster = try await BenchCluster.start(3, prefix: "tls", certificates: secure ? certificates : nil)
            let ids = try await cluster.createSessions(keyspace, fixture: fixture)
            for shape in shapes {
                let run = try await update(cluster: cluster, ids: ids, writers: shape.writers, seconds: seconds, sticky: false)
                BenchLog.figure(
                    String(
                        format: "tls %@: update 1k %@: %.0f ops/s, %.1f us CPU/op, p50 %.0f us, %d errors",
                        secure ? "on" : "off", shape.key, run.ops, run.cpuUsPerOp, run.p50Us, run.errors))
                if secure {
                    ops[shape.key]!.with = run.ops
                    cpu[shape.key]!.with = run.cpuUsPerOp
                } else {
                    ops[shape.key] = (run.ops, 0)
                    cpu[shape.key] = (run.cpuUsPerOp, 0)
                }
            }
            await cluster.stop()
        }
        var outages: [Bool: [Double]] = [:]
        for index in 0..<failoverRuns {
            for secure in [false, true] {
                let run = try BenchFailover.run(
                    sessionCount: 48, writers: 8, logDirectory: directory, certificates: secure ? certificates : nil)
                BenchLog.figure(
                    "tls \(secure ? "on" : "off"): failover run \(index + 1): writable after "
                        + (run.outage.map { String(format: "%.3f s", $0) } ?? "n/a") + ", \(run.lost) acknowledged writes lost")
                if let outage = run.outage { outages[secure, default: []].append(outage) }
            }
        }
        func median(_ values: [Double]?) -> Double? {
            guard let values, !values.isEmpty else { return nil }
            return values.sorted()[values.count / 2]
        }
        func pair(_ values: (without: Double, with: Double)) -> TLSFigure.Pair {
            TLSFigure.Pair(without: values.without, with: values.with, ratio: values.without > 0 ? values.with / values.without : 0)
        }
        let failover = median(outages[false]).flatMap { without in median(outages[true]).map { pair((without, $0)) } }
        return TLSFigure(
            updateOps: ops.mapValues(pair), cpuUsPerOp: cpu.mapValues(pair), failoverOutageS: failover,
            setup: "3 in-process nodes, R = 2, .replicated(1), 1 KB sessions, with and without mutual TLS 1.3 on peer links; "
                + "failover: 3 session-node processes, kill -9, median of \(failoverRuns) runs each way")
    }
}
