import AlexandriaSim
import Testing

/// The fixed seeds CI runs: every fault at once on 40 nodes; each run checks the invariants after every step and
/// convergence at the end. A failure names the seed; `alexandria-sim --scenario faults --seed N` replays it.
@Suite("Simulated networks")
struct SimTests {
    /// The faults scenario, smaller so a debug build runs it in seconds (the script runs the full size).
    static func small(_ seed: UInt64) -> SimConfig {
        var config = SimScenarios.faults(seed: seed, nodes: 12)
        config.warmup = 10
        config.duration = 30
        config.settle = 40
        config.pollOnPublish = true
        config.gossip.pollSeconds = 1
        return config
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func everyFaultAtOnceKeepsTheInvariants(seed: UInt64) {
        let report = Simulation(Self.small(seed)).run()
        #expect(report.failures.isEmpty, "seed \(seed): \(report.failures.joined(separator: "; "))")
        #expect(report.convergedAfter != nil, "seed \(seed) did not converge")
        #expect(report.publishes >= 25)
    }

    @Test func aRunReplaysExactlyFromItsSeed() {
        let config = Self.small(7)
        let a = Simulation(config).run()
        let b = Simulation(config).run()
        #expect(a.steps == b.steps && a.messages == b.messages && a.dropped == b.dropped)
        #expect(a.deliveryP99 == b.deliveryP99 && a.convergedAfter == b.convergedAfter)
    }

    /// A node back from offline reconciles with several peers at once; it pulls each missing item from one of them
    /// (the peers answer its id lists with theirs, and it asks each id of one peer), so the item bytes it receives are
    /// about what it lacked, not that once per peer.
    @Test func aNodeBackFromOfflinePullsEachItemOnce() {
        var config = SimScenarios.catchUp(seed: 1, releases: 2000)
        config.nodes = 10
        config.warmup = 10
        config.duration = 40
        let report = Simulation(config).run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.catchUp != nil, "did not catch up")
        #expect(
            Double(report.catchUpItemBytes) <= 1.5 * Double(report.catchUpNeededBytes),
            "\(report.catchUpItemBytes) item bytes received for \(report.catchUpNeededBytes) lacked")
    }

    @Test func aCleanNetworkDeliversWithinTheFanoutBudget() {
        var config = SimConfig()
        config.nodes = 30
        config.duration = 20
        config.settle = 20
        config.pollOnPublish = true
        config.gossip.pollSeconds = 1
        let report = Simulation(config).run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.deliveryP99 < 2)
        #expect(report.messagesPerAnnouncement <= 3.1)
    }
}
