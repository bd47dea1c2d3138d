import AlexandriaSim
import Testing

/// The fixed seeds CI runs: every fault at once on 40 nodes; each run checks the invariants after every step and
/// convergence at the end. A failure names the seed; `alexandria-sim --scenario faults --seed N` replays it.
@Suite("Simulated networks")
struct SimTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func faultsOnFortyNodesKeepTheInvariants(seed: UInt64) {
        let report = Simulation(SimScenarios.faults(seed: seed)).run()
        #expect(report.failures.isEmpty, "seed \(seed): \(report.failures.joined(separator: "; "))")
        #expect(report.convergedAfter != nil, "seed \(seed) did not converge")
        #expect(report.publishes > 50)
    }

    @Test func aRunReplaysExactlyFromItsSeed() {
        var config = SimScenarios.faults(seed: 7, nodes: 20)
        config.duration = 20
        config.settle = 30
        let a = Simulation(config).run()
        let b = Simulation(config).run()
        #expect(a.steps == b.steps && a.messages == b.messages && a.dropped == b.dropped)
        #expect(a.deliveryP99 == b.deliveryP99 && a.convergedAfter == b.convergedAfter)
    }

    @Test func aCleanNetworkDeliversWithinTheFanoutBudget() {
        var config = SimConfig()
        config.nodes = 100
        config.duration = 30
        let report = Simulation(config).run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.deliveryP99 < 2)
        #expect(report.messagesPerAnnouncement <= 3.1)
    }
}
