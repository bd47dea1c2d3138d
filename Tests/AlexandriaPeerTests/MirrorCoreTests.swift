import AlexandriaCore
import AlexandriaPeer
import Testing

/// The mirror's decisions with no store, no catalog, no socket: facts in, actions out.
@Suite("Mirror core")
struct MirrorCoreTests {
    static let keys = Array("01234567").map { String(repeating: String($0), count: 64) }

    /// The releases `actions` remove from the store.
    static func removals(_ actions: [MirrorAction]) -> [ContentHash] {
        actions.compactMap { if case .remove(let id, _) = $0 { id } else { nil } }
    }

    /// The first release from `n` on that `core` is not the designated keeper of.
    static func notKept(by core: MirrorCore, from n: UInt8, _ make: (UInt8) -> MirrorRelease) -> MirrorRelease {
        var n = n
        while core.isKeeper(make(n)) { n += 1 }
        return make(n)
    }

    static func release(
        _ n: UInt8, size: UInt64 = 100, held: Bool = false, holders: Set<String> = [], must: Bool = false,
        demand: Int = 0, chunks: [UInt8]? = nil, stated: MirrorRelease.Statement? = nil, witnessable: Bool = false
    ) -> MirrorRelease {
        let ids = (chunks ?? [n]).map { ContentHash.of([0xC0, $0]) }
        let per = size / UInt64(ids.count)
        let stored = held ? Dictionary(uniqueKeysWithValues: ids.map { ($0, per) }) : [:]
        return MirrorRelease(
            id: ContentHash.of([n]), holderKeys: holders, size: size, stored: stored, pending: held ? 0 : size,
            files: ids, held: held, must: must, demand: demand, stated: stated, witnessable: witnessable)
    }

    static func core(
        _ key: Int = 0, mode: MirrorPolicy.Mode = .all, budget: UInt64 = 1000, factor: Int = 2
    ) -> MirrorCore {
        var policy = MirrorPolicy()
        policy.mode = mode
        policy.budgetBytes = budget
        policy.replicationFactor = factor
        policy.holderTTLSeconds = 600
        return MirrorCore(policy: policy, selfHex: keys[key])
    }

    @Test func heldReleasesAreStatedThenRestatedAtHalfTheirLifetime() {
        var core = Self.core()
        let fresh = Self.release(1, held: true)
        let r1 = core.round([fresh], live: [], now: 1000).actions
        #expect(r1 == [.state(fresh.id, holds: true)])
        let recent = Self.release(1, held: true, stated: .init(holds: true, at: 800))
        let r2 = core.round([recent], live: [], now: 1000).actions
        #expect(r2 == [])
        let old = Self.release(1, held: true, stated: .init(holds: true, at: 699))
        let r3 = core.round([old], live: [], now: 1000).actions
        #expect(r3 == [.state(old.id, holds: true)])
        let retracted = Self.release(1, held: true, stated: .init(holds: false, at: 999))
        let r4 = core.round([retracted], live: [], now: 1000).actions
        #expect(r4 == [.state(retracted.id, holds: true)])
    }

    @Test func onlyHeldReleasesAreWitnessed() {
        var core = Self.core(mode: .pinned)
        let held = Self.release(1, held: true, stated: .init(holds: true, at: 0), witnessable: true)
        let missing = Self.release(2, witnessable: true)
        let r5 = core.round([held, missing], live: [], now: 10).actions
        #expect(r5 == [.cosign(held.id)])
    }

    @Test func thePlanKeepsMustsThenUnderReplicatedThenTheMostDemandedWithinTheBudget() {
        let core = Self.core(budget: 300, factor: 2)
        let pinned = Self.release(1, size: 250, must: true)
        let scarce = Self.release(2, size: 100, holders: [Self.keys[1]])
        let popular = Self.release(3, size: 100, holders: Set(Self.keys[1...3]), demand: 50)
        let plain = Self.release(4, size: 100, holders: Set(Self.keys[1...3]), demand: 1)
        // The pin takes 250 whatever the budget says; 50 are left, so nothing else fits.
        #expect(core.plan([pinned, scarce, popular, plain]) == [pinned.id])
        // Without the pin: the under-replicated one first, then the most demanded, then the budget is spent.
        #expect(core.plan([scarce, popular, plain]) == [scarce.id, popular.id, plain.id])
        let tight = Self.core(budget: 200, factor: 2)
        #expect(tight.plan([plain, popular, scarce]) == [scarce.id, popular.id])
    }

    @Test func chunksSharedByReleasesAreCountedOnce() {
        let core = Self.core(budget: 150)
        let a = Self.release(1, size: 100, held: true, chunks: [7, 8])
        let b = Self.release(2, size: 100, held: true, chunks: [7, 8])
        #expect(core.plan([a, b]) == [a.id, b.id])
        #expect(MirrorCore.usage([a, b]).stored == 100)
        #expect(MirrorCore.usage([a, b]).logical == 200)
    }

    @Test func inFactorModeExactlyTheMissingHoldersPullByRendezvousRank() {
        let live = Set(Self.keys[0..<6])
        for n in UInt8(1)...UInt8(20) {
            let r = Self.release(n, holders: [Self.keys[6]])
            let pulling = (0..<6).filter {
                Self.core($0, mode: .factor, budget: 1 << 20, factor: 3).plan([r], live: live) == [r.id]
            }
            #expect(pulling.count == 2, "release \(n): \(pulling)")
        }
        // Fully replicated: nobody pulls.
        let full = Self.release(99, holders: Set(Self.keys[5..<8]))
        #expect((0..<5).allSatisfy { Self.core($0, mode: .factor, factor: 3).plan([full], live: live).isEmpty })
    }

    @Test func onePullAtATimeAndAFailedOneWaitsBeforeItIsTriedAgain() {
        var core = Self.core()
        let a = Self.release(1)
        let b = Self.release(2)
        let r6 = core.round([a, b], live: [], now: 0).actions
        #expect(r6 == [.pull(a.id)])
        let r7 = core.round([a, b], live: [], now: 1).actions
        #expect(r7 == [])
        core.pullFinished(a.id, ok: false, now: 2)
        // a failed: b goes next, and a only after the retry delay.
        let r8 = core.round([a, b], live: [], now: 3).actions
        #expect(r8 == [.pull(b.id)])
        core.pullFinished(b.id, ok: true, now: 4)
        let r9 = core.round([a], live: [], now: 5).actions
        #expect(r9 == [])
        let r10 = core.round([a], live: [], now: 2 + MirrorCore.retrySeconds + 1).actions
        #expect(r10 == [.pull(a.id)])
        #expect(core.lastPull == 4)
    }

    @Test func evictionRunsOnlyOverBudgetAndNeverDropsTheLastKnownCopy() {
        // Mode pinned: nothing but the pin is planned, so every held release is a candidate for eviction.
        var core = Self.core(mode: .pinned, budget: 250, factor: 2)
        let stated = MirrorRelease.Statement(holds: true, at: 0)
        let pin = Self.release(1, size: 100, held: true, must: true, stated: stated)
        let alone = Self.release(2, size: 100, held: true, stated: stated)
        let others = Set(Self.keys[1...3])
        let wide = Self.notKept(by: core, from: 3) {
            Self.release($0, size: 100, held: true, holders: others, demand: 9, stated: stated)
        }
        let narrow = Self.notKept(by: core, from: 100) {
            Self.release($0, size: 100, held: true, holders: others, demand: 1, stated: stated)
        }
        let actions = core.round([pin, alone, wide, narrow], live: [], now: 10).actions
        let removed = Self.removals(actions)
        // 400 held, budget 250. The one nobody else holds is retired first (least demanded): its statement is
        // retracted, its bytes stay. Then the least demanded with R others goes, and the budget holds.
        #expect(removed == [narrow.id])
        #expect(actions.contains(.state(alone.id, holds: false)) && actions.contains(.state(narrow.id, holds: false)))
        #expect(actions.last == .collectGarbage)
        // Within budget: nothing goes.
        var roomy = Self.core(mode: .pinned, budget: 400)
        let r11 = roomy.round([pin, alone, wide, narrow], live: [], now: 10).actions
        #expect(r11.isEmpty)
    }

    @Test func holdersThatSeeEachOtherNeverAllEvict() {
        // Three holders, each over budget, each seeing the two others (R = 2 of them): exactly one is the keeper.
        for n in UInt8(1)...UInt8(20) {
            var evicting = 0
            for me in 0..<3 {
                var core = Self.core(me, mode: .pinned, budget: 0, factor: 2)
                let others = Set(Self.keys[0..<3]).subtracting([Self.keys[me]])
                let r = Self.release(n, held: true, holders: others, stated: .init(holds: true, at: 0))
                if core.round([r], live: [], now: 1).actions.contains(where: {
                    if case .remove = $0 { return true } else { return false }
                }) {
                    evicting += 1
                }
            }
            #expect(evicting == 2, "release \(n)")
        }
    }

    @Test func filesAKeptReleaseNamesSurviveTheEvictionOfAnother() {
        var core = Self.core(mode: .all, budget: 150, factor: 1)
        let stated = MirrorRelease.Statement(holds: true, at: 0)
        let kept = Self.release(1, size: 100, held: true, demand: 10, chunks: [5, 6], stated: stated)
        let victim = Self.notKept(by: core, from: 2) {
            Self.release(
                $0, size: 200, held: true, holders: [Self.keys[1], Self.keys[2]], chunks: [6, 7], stated: stated)
        }
        let actions = core.round([kept, victim], live: [], now: 1).actions
        #expect(actions.first == .remove(victim.id, files: [ContentHash.of([0xC0, 7])]))
    }

    @Test func demandIsReportedWhenItChangesOrBeforeItAgesOut() {
        var core = Self.core()
        let r12 = core.demandReportDue([], now: 0)
        #expect(!r12)
        let r13 = core.demandReportDue(["a:1"], now: 0)
        #expect(r13)
        let r14 = core.demandReportDue(["a:2"], now: 30)
        #expect(!r14)
        let r15 = core.demandReportDue(["a:2"], now: 60)
        #expect(r15)
        let r16 = core.demandReportDue(["a:2"], now: 200)
        #expect(!r16)
        let r17 = core.demandReportDue(["a:2"], now: 660)
        #expect(r17)
    }

    @Test func aReleaseNoLongerHeldIsRetracted() {
        // Held once and stated; then a scrub dropped a damaged chunk, or the store was lost and anti-entropy brought
        // the old statement back: the node says it no longer holds it, or others count it as a holder.
        var core = Self.core(mode: .pinned)
        let lost = Self.release(1, held: false, stated: .init(holds: true, at: 900))
        let first = core.round([lost], live: [], now: 1000).actions
        #expect(first == [.state(lost.id, holds: false)])
        let retracted = Self.release(1, held: false, stated: .init(holds: false, at: 990))
        let second = core.round([retracted], live: [], now: 1000).actions
        #expect(second.isEmpty)
    }

    @Test func aReleaseAtTheFactorIsNotUnderReplicatedWhetherHeldOrNot() {
        // Three others hold it and R is 3: surplus here either way (it used to rank as under-replicated while not
        // held, so a full mirror evicted it and pulled it again every round).
        let core = Self.core(mode: .all, budget: 100, factor: 3)
        let others = Set(Self.keys[1...3])
        let scarce = Self.release(1, size: 100, holders: [Self.keys[1]], demand: 0)
        let surplus = Self.release(2, size: 100, holders: others, demand: 99)
        #expect(core.plan([surplus, scarce]) == [scarce.id])
        let held = Self.release(2, size: 100, held: true, holders: others, demand: 99)
        #expect(core.plan([held, scarce]) == [scarce.id])
    }

    @Test func anUnderReplicatedReleaseGetsOneMorePullerPerPatiencePeriod() {
        var policy = MirrorPolicy()
        policy.mode = .factor
        policy.replicationFactor = 2
        policy.placementPatienceSeconds = 30
        let live = Set(Self.keys[0..<6])
        let r = Self.release(1, holders: [Self.keys[6]])
        // Which of the six would pull at each stage.
        func pullers(after seconds: Double) -> Int {
            (0..<6).filter { k in
                var core = MirrorCore(policy: policy, selfHex: Self.keys[k])
                _ = core.round([r], live: live, now: 0)
                _ = core.round([r], live: live, now: seconds)
                return core.pulling == r.id
            }.count
        }
        #expect(pullers(after: 0) == 1)
        #expect(pullers(after: 31) == 2)
        #expect(pullers(after: 61) == 3)
    }

    @Test func evictionNeedsRTrustedOtherHolders() {
        let stated = MirrorRelease.Statement(holds: true, at: 0)
        var core = Self.core(mode: .pinned, budget: 0, factor: 2)
        // One other holder is not enough: its claim may be a lost disk or a flipped chunk.
        let one = Self.notKept(by: core, from: 1) {
            Self.release($0, held: true, holders: [Self.keys[1]], stated: stated)
        }
        let live = Set(Self.keys[0..<5])
        let kept = core.round([one], live: live, now: 1).actions
        // Retired: the statement is retracted so others re-replicate; the bytes stay until R others hold it.
        #expect(kept == [.state(one.id, holds: false)])
        let waiting = Self.notKept(by: core, from: 1) {
            Self.release($0, held: true, holders: [Self.keys[1]], stated: .init(holds: false, at: 1))
        }
        let still = core.round([waiting], live: live, now: 2).actions
        #expect(still.isEmpty)
        let two = Self.notKept(by: core, from: 1) {
            Self.release($0, held: true, holders: [Self.keys[1], Self.keys[2]], stated: stated)
        }
        let evicted = core.round([two], live: live, now: 1).actions
        #expect(evicted.contains(.state(two.id, holds: false)))
        // A holder that served bad bytes here does not count.
        var wary = Self.core(mode: .pinned, budget: 0, factor: 2)
        wary.servedBadBytes(Self.keys[2], now: 0)
        let refused = wary.round([two], live: live, now: 1).actions
        // In a network of two nodes, the other one holding it is every other node there is: enough.
        var small = Self.core(mode: .pinned, budget: 0, factor: 2)
        let pair = Self.notKept(by: small, from: 1) {
            Self.release($0, held: true, holders: [Self.keys[1]], stated: stated)
        }
        let smallActions = small.round([pair], live: Set(Self.keys[0...1]), now: 1).actions
        #expect(Self.removals(smallActions) == [pair.id])
        #expect(Self.removals(refused).isEmpty)
    }
}
