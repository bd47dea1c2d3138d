/// Named configurations: the ones CI runs, the random-seed script runs, and the fidelity check.
public enum SimScenarios {
    /// Every fault at once, small: loss, duplication, reordering, a partition that heals, churn with lost stores,
    /// clock skew, a forger, a flooder, a liar about addresses, and equivocating publishes.
    public static func faults(seed: UInt64, nodes: Int = 40) -> SimConfig {
        var c = SimConfig()
        c.seed = seed
        c.nodes = nodes
        c.warmup = 20
        c.duration = 60
        c.settle = 90
        c.publishInterval = 1
        c.loss = 0.02
        c.duplication = 0.01
        c.reorder = true
        c.partition = true
        c.churnPerHour = 60  // about one crash per node per minute of faults
        c.downtimeMean = 10
        c.lostStore = 0.2
        c.clockSkew = 5
        c.forgers = 1
        c.flooders = 1
        c.liars = 1
        c.equivocations = 3
        return c
    }

    /// Benchmarks/gossip.sh's delivery scenario: 50 nodes, default intervals, bootstrap to one of the first three
    /// nodes, a 15 s warm-up, 10 publishes 2.5 s apart; loopback on a loaded two-core machine modelled as a
    /// per-message delay with median 15 ms (lognormal sigma 1).
    public static func fidelity(seed: UInt64) -> SimConfig {
        var c = SimConfig()
        c.seed = seed
        c.nodes = 50
        c.warmup = 15
        c.duration = 25
        c.settle = 30
        c.publishInterval = 2.5
        c.publishers = 10
        c.latencyMedian = 0.015
        c.latencySigma = 1.0
        c.uplinkBytesPerSecond = 1e9
        c.bootstrapPeers = 1
        c.bootstrapFirst = 3
        return c
    }

    /// The internet-scale runs of Protocol/scale.md: internet latency (median 50 ms, lognormal sigma 0.6), 100 Mbit/s
    /// uplinks, 10% of nodes an hour leaving and coming back (mean 30 min away), a publish a second, a 60 s warm-up
    /// so peer exchange fills the tables.
    public static func scale(seed: UInt64, nodes: Int) -> SimConfig {
        var c = SimConfig()
        c.seed = seed
        c.nodes = nodes
        c.warmup = 60
        c.duration = 60
        c.settle = 30
        c.publishInterval = 1
        c.publishers = 1000
        c.latencyMedian = 0.05
        c.latencySigma = 0.6
        c.uplinkBytesPerSecond = 12_500_000
        c.churnPerHour = 0.1
        c.downtimeMean = 1800
        c.pollOnPublish = true
        c.gossip.pollSeconds = 5
        return c
    }

    /// A node offline for a day at a publish a second (86,400 releases, or the whole catalog if smaller) comes back
    /// to 30 nodes holding `releases`, over internet latency and 100 Mbit/s uplinks.
    public static func catchUp(seed: UInt64, releases: Int) -> SimConfig {
        var c = scale(seed: seed, nodes: 30)
        c.churnPerHour = 0
        c.publishInterval = 0
        c.baseReleases = releases
        c.catchUpReleases = min(86_400, releases)
        c.warmup = 40
        c.duration = 240
        c.settle = 0
        return c
    }
}
