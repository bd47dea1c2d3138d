/// A share of one core for work that any client can ask for: a token bucket of seconds of CPU time, refilled at
/// `share` seconds per second up to `burstSeconds`. Work is admitted while the balance is positive and charged, after
/// it ran, with what it took, so one admitted piece of work may take the balance below zero and the next waits for the
/// refill. Over any long window the work takes at most `share` of one core plus one burst.
///
/// No I/O and no clock of its own: the caller passes monotonic seconds, so tests drive it exactly.
public struct WorkBudget: Sendable {
    public let share: Double
    public let burstSeconds: Double
    private(set) var balance: Double
    private var updated: Double

    /// A full bucket at `now`.
    public init(share: Double, burstSeconds: Double, now: Double) {
        self.share = max(0, share)
        self.burstSeconds = max(0, burstSeconds)
        balance = self.burstSeconds
        updated = now
    }

    private mutating func refill(_ now: Double) {
        guard now > updated else { return }
        balance = min(burstSeconds, balance + (now - updated) * share)
        updated = now
    }

    /// Whether work may start at `now`.
    public mutating func admits(now: Double) -> Bool {
        refill(now)
        return balance > 0
    }

    /// Charges `seconds` of work that ended at `now`.
    public mutating func charge(_ seconds: Double, now: Double) {
        refill(now)
        balance -= max(0, seconds)
    }

    /// Seconds from `now` until work is admitted again (0 if it is now); infinite with a share of 0.
    public mutating func retryAfter(now: Double) -> Double {
        refill(now)
        if balance > 0 { return 0 }
        return share > 0 ? (-balance / share).nextUp : .infinity
    }
}
