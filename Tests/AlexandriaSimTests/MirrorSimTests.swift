import AlexandriaSim
import Testing

/// The fixed seeds CI runs for the mirror: replication to the factor, eviction under a budget, chunks that flip on
/// disk, servers that send bad bytes, crashes with and without the store. A failure names the seed;
/// `alexandria-sim --scenario mirror --seed N` replays it.
@Suite("Simulated mirrors")
struct MirrorSimTests {
    /// The mirror scenario, shorter so a debug build runs it in a few seconds (the script runs the full length).
    static func small(_ seed: UInt64) -> MirrorSimConfig {
        var config = MirrorSimConfig()
        config.seed = seed
        config.duration = 80
        config.settle = 100
        return config
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func mirrorsKeepEveryReleaseThroughCorruptionAndCrashes(seed: UInt64) {
        let report = MirrorSimulation(Self.small(seed)).run()
        #expect(report.failures.isEmpty, "seed \(seed): \(report.failures.joined(separator: "; "))")
        // The faults happened: otherwise the run proves nothing.
        #expect(report.corruptions > 0 && report.crashes > 0 && report.evictions > 0 && report.transfers > 0)
    }

    @Test func aMirrorRunReplaysExactlyFromItsSeed() {
        let config = Self.small(9)
        let a = MirrorSimulation(config).run()
        let b = MirrorSimulation(config).run()
        #expect(a.steps == b.steps && a.transfers == b.transfers && a.evictions == b.evictions)
        #expect(a.failures == b.failures && a.rejected == b.rejected && a.byzantineShortfalls == b.byzantineShortfalls)
    }

    @Test func badBytesAreRefusedAndNeverServedByAnHonestNode() {
        var config = Self.small(5)
        config.corruptServers = 2
        config.corruptionPerHour = 600
        let report = MirrorSimulation(config).run()
        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.rejected > 0 && report.repairedOnRead + report.corruptions > 0)
    }
}
