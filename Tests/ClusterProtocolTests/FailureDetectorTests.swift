@testable import ClusterProtocol
import SessionCore
import Testing

/// The failure detector step by step: what it hears, whom it suspects, whom it lets the
/// leader remove, with the LAN defaults (suspect after 300 ms, down after 600 ms, lease
/// plus drift 600 ms).
@Suite struct FailureDetectorTests {
    let timing = FailureDetector.Timing(
        NodeConfiguration(id: "n1", address: PeerAddress(host: "10.0.0.1", port: 7000), incarnation: 1, seeds: []))

    func at(_ milliseconds: Int64) -> Timestamp { Timestamp(milliseconds: milliseconds) }

    @Test func aPeerSilentPastSuspectAfterIsSuspectedOnceUntilHeardAgain() {
        var detector = FailureDetector(timing: timing)
        detector.heard("n2", at: at(0))
        detector.heard("n3", at: at(0))
        #expect(detector.newSuspects(among: ["n2", "n3"], at: at(299)).isEmpty)
        detector.heard("n3", at: at(250))
        #expect(detector.newSuspects(among: ["n2", "n3"], at: at(300)) == ["n2"])
        // Probed already: not suspected again while the probes are out.
        #expect(detector.newSuspects(among: ["n2", "n3"], at: at(400)).isEmpty)
        #expect(detector.state(of: "n2", at: at(400)) == .suspect)
        // Heard again: the suspicion ends, and a new silence starts a new one.
        detector.heard("n2", at: at(450))
        #expect(detector.state(of: "n2", at: at(451)) == .alive)
        #expect(detector.newSuspects(among: ["n2"], at: at(750)) == ["n2"])
    }

    @Test func anUntrackedPeerIsTrackedFromNowNotSuspected() {
        var detector = FailureDetector(timing: timing)
        #expect(detector.newSuspects(among: ["n2"], at: at(10_000)).isEmpty)
        #expect(detector.isTracked("n2"))
        #expect(!detector.isDown("n2", at: at(10_599)))
        #expect(detector.isDown("n2", at: at(10_600)))
    }

    @Test func removalWaitsForBothTheSilenceAndTheLapseOfTheLeaseLastRenewed() {
        var detector = FailureDetector(timing: timing)
        detector.heard("n2", at: at(0))
        detector.renewedLease(of: "n2", at: at(100))
        // Silent for 600 ms at 600, but its lease renewed at 100 runs (with drift) to 700.
        #expect(!detector.isDown("n2", at: at(600)))
        #expect(!detector.isDown("n2", at: at(699)))
        #expect(detector.isDown("n2", at: at(700)))
        #expect(detector.state(of: "n2", at: at(700)) == .down)
    }

    @Test func aPeerAProbeVouchedForGetsTwiceDownAfter() {
        var detector = FailureDetector(timing: timing)
        detector.heard("n2", at: at(0))
        detector.vouched(for: "n2", at: at(900))
        #expect(!detector.isDown("n2", at: at(1_000)))
        // The vouch is stale once suspectAfter has passed since it.
        #expect(detector.isDown("n2", at: at(1_200)))
        detector.vouched(for: "n2", at: at(1_150))
        #expect(!detector.isDown("n2", at: at(1_199)))
        #expect(detector.isDown("n2", at: at(1_450)))
    }

    @Test func aNewLeaderCountsEveryoneAsHeardAndRenewedNow() {
        var detector = FailureDetector(timing: timing)
        detector.heard("n2", at: at(0))
        _ = detector.newSuspects(among: ["n2"], at: at(5_000))
        #expect(detector.isDown("n2", at: at(5_000)))
        detector.restartAll(at: at(5_000))
        #expect(!detector.isDown("n2", at: at(5_599)))
        #expect(detector.state(of: "n2", at: at(5_000)) == .alive)
        #expect(detector.newSuspects(among: ["n2"], at: at(5_300)) == ["n2"], "the suspicion restarted too")
    }

    @Test func heardWithinAWindowNeverGoesBackInTime() {
        var detector = FailureDetector(timing: timing)
        detector.heard("n2", at: at(1_000))
        detector.heard("n2", at: at(400))  // a late delivery stamped earlier
        #expect(detector.heard("n2", within: 100, at: at(1_050)))
        #expect(!detector.heard("n3", within: 100, at: at(1_050)), "an unknown peer is not heard")
    }
}
