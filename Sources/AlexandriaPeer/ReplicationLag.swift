import AlexandriaCore
import AlexandriaMetrics

/// How far a mirror is behind its plan: the releases it plans to keep but does not hold, and the seconds since it
/// first planned the oldest of them. A value with the clock passed in; the mirror updates it each round.
struct ReplicationLag {
    /// When each release still missing was first planned (seconds, the caller's clock).
    private(set) var firstPlanned: [ContentHash: Double] = [:]

    /// Updates with this round's missing releases; returns how many there are and the lag in seconds (0 if none).
    mutating func update(missing: Set<ContentHash>, now: Double) -> (pending: Int, lagSeconds: Double) {
        firstPlanned = firstPlanned.filter { missing.contains($0.key) }
        for id in missing where firstPlanned[id] == nil { firstPlanned[id] = now }
        let oldest = firstPlanned.values.min()
        return (missing.count, oldest.map { max(0, now - $0) } ?? 0)
    }
}

extension Mirror {
    /// Sets the replication gauges (`alexandria_replication_*`) and the budget gauge for this round's plan.
    func recordMetrics(_ all: [MirrorRelease], keep: Set<ContentHash>, now: Double) {
        let missing = Set(all.filter { keep.contains($0.id) && !$0.held }.map(\.id))
        let (pending, lag) = replicationLag.update(missing: missing, now: now)
        NodeMetrics.set(.replicationPending, Double(pending))
        NodeMetrics.set(.replicationLag, lag)
        NodeMetrics.set(.storeBudgetBytes, Double(policy.budgetBytes))
    }
}
