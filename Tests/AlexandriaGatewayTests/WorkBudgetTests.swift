import Testing

@testable import AlexandriaGateway

/// The CPU budget of release-page audits (`WorkBudget`, used by `AuditCache`), on explicit times. `admits` and
/// `retryAfter` refill the bucket (they mutate it), which `#expect` cannot do inside its expression, so each answer
/// is taken first.
@Suite("Work budget")
struct WorkBudgetTests {
    @Test func aBurstThenTheShareAndNeverMoreOverTime() {
        var b = WorkBudget(share: 0.25, burstSeconds: 2, now: 0)
        // A full bucket admits work until it is spent; the piece that overdraws it is charged in full.
        var admitted = b.admits(now: 0)
        #expect(admitted)
        b.charge(1.5, now: 1.5)
        admitted = b.admits(now: 1.5)
        #expect(admitted)
        b.charge(1.5, now: 3)
        // Full (2) until the first charge, 0.5 after it, + 1.5 s × 0.25 - 1.5 = -0.625: refused until
        // 0.625 / 0.25 = 2.5 s later.
        admitted = b.admits(now: 3)
        #expect(!admitted)
        let wait = b.retryAfter(now: 3)
        #expect(abs(wait - 2.5) < 1e-9)
        admitted = b.admits(now: 5.49)
        #expect(!admitted)
        admitted = b.admits(now: 5.51)
        #expect(admitted)
        // The bucket never holds more than the burst however long it idles.
        var idle = WorkBudget(share: 0.25, burstSeconds: 2, now: 0)
        admitted = idle.admits(now: 1_000_000)
        #expect(admitted)
        idle.charge(2.0001, now: 1_000_000)
        admitted = idle.admits(now: 1_000_000)
        #expect(!admitted)
    }

    /// A client that asks for work as fast as it is admitted gets at most the share of one core, plus the burst.
    @Test func aGreedyClientGetsTheShare() {
        var b = WorkBudget(share: 0.25, burstSeconds: 5, now: 0)
        var now = 0.0
        var work = 0.0
        while now < 1000 {
            if b.admits(now: now) {
                now += 0.2
                work += 0.2
                b.charge(0.2, now: now)
            } else {
                now += 0.01
            }
        }
        #expect(work <= 5 + 0.25 * 1000 + 0.2)
        #expect(work >= 0.25 * 1000 - 1)
    }

    @Test func aShareOfZeroAdmitsOnlyTheBurst() {
        var b = WorkBudget(share: 0, burstSeconds: 1, now: 0)
        var admitted = b.admits(now: 0)
        #expect(admitted)
        b.charge(1, now: 0)
        admitted = b.admits(now: 100)
        #expect(!admitted)
        let never = b.retryAfter(now: 100)
        #expect(never == .infinity)
        #expect(PageRoutes.PageResult.seconds(.infinity) == 3600)
        #expect(PageRoutes.PageResult.seconds(0.01) == 1)
    }
}
