import SessionCore

/// When to open again a socket the transport keeps for the node's whole life: its UDP
/// endpoint, or the TCP link to one peer.
///
/// A socket may fail at any time: a host firewall or a route makes the node's own
/// `sendmsg` fail (EPERM, EHOSTUNREACH), which closes a SwiftNIO datagram channel; a
/// connection attempt fails while the peer is cut off. The answer is always the same: open
/// it again after a pause that doubles with each failure in a row, up to a maximum, and
/// never give up (L3 of docs/ARCHITECTURE.md). A node that gave up would stay deaf or mute
/// after the network healed, and with it every lease it needs.
///
/// The runtime and the simulator both ask this value, so the simulator's sweep replays the
/// runtime's recovery decisions and would catch a transport that gives up.
package struct SocketRecovery: Sendable {
    /// The pause after the first failure.
    package var initialDelayMilliseconds: Int64
    /// The longest pause between two attempts.
    package var maximumDelayMilliseconds: Int64
    /// Failures since the socket was last open.
    package private(set) var failures = 0

    /// A deliberately broken mode for testing the simulator's liveness checks: after a
    /// failure the socket is never opened again. The sweep must catch it. Never set it
    /// outside that test.
    package var unsafeNeverRetry = false

    package init(initialDelayMilliseconds: Int64, maximumDelayMilliseconds: Int64) {
        self.initialDelayMilliseconds = max(1, initialDelayMilliseconds)
        self.maximumDelayMilliseconds = max(self.initialDelayMilliseconds, maximumDelayMilliseconds)
    }

    /// The socket failed, or an attempt to open it did, at `now`: returns when to try again
    /// (nil only in the broken mode).
    package mutating func failed(now: Timestamp) -> Timestamp? {
        failures += 1
        guard !unsafeNeverRetry else { return nil }
        return now.adding(milliseconds: delayAfterFailures(failures))
    }

    /// The socket is open (or the link connected): the next failure starts from the initial pause.
    package mutating func opened() {
        failures = 0
    }

    /// The pause after `count` failures in a row: the initial one doubled per failure after
    /// the first, at most the maximum.
    func delayAfterFailures(_ count: Int) -> Int64 {
        let exponent = min(max(count - 1, 0), 20)
        let delay = initialDelayMilliseconds.multipliedReportingOverflow(by: 1 << exponent)
        return delay.overflow ? maximumDelayMilliseconds : min(delay.partialValue, maximumDelayMilliseconds)
    }
}
