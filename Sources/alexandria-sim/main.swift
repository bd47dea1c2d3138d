import AlexandriaSim
import Foundation

// alexandria-sim: runs a whole network of gossip cores in one process on simulated time (AlexandriaSim).
//   alexandria-sim --seed N [--nodes N] [--scenario faults|clean|fidelity|scale|catchup|mirror] [--duration S]
//                  [--settle S] [--base-releases R] [--publish-interval S] [--churn PER_HOUR] [--latency S]
//                  [--fanout F] [--anti-entropy S] [--lazy K]
// Prints the report; exits 1 if an invariant failed, printing the seed that replays it.
var config = SimConfig()
var scenario = "faults"
let args = Array(CommandLine.arguments.dropFirst())
func value(_ name: String) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}
if args.contains("--help") {
    print(
        "usage: alexandria-sim --seed N [--nodes N] [--scenario faults|clean|fidelity|scale|catchup|mirror] "
            + "[--duration S] [--settle S] [--base-releases R] [--publish-interval S] [--churn PER_HOUR] [--latency S] "
            + "[--warmup S] [--fanout F] [--anti-entropy S] [--lazy K]")
    exit(0)
}
if let s = value("--scenario") { scenario = s }
if scenario == "mirror" {
    // The mirror scenario (MirrorSimulation): replication, eviction, corruption and crashes with lost stores.
    var mirror = MirrorSimConfig()
    if let s = value("--seed"), let v = UInt64(s) { mirror.seed = v }
    if let s = value("--nodes"), let v = Int(s) { mirror.nodes = v }
    if let s = value("--duration"), let v = Double(s) { mirror.duration = v }
    if let s = value("--settle"), let v = Double(s) { mirror.settle = v }
    let started = Date()
    let report = MirrorSimulation(mirror).run()
    let seconds = Date().timeIntervalSince(started)
    print(report.summary)
    print(String(format: "wall %.2f s; %.0f steps/s", seconds, Double(report.steps) / max(seconds, 1e-9)))
    if !report.failures.isEmpty {
        print("FAILED: replay with: alexandria-sim --scenario mirror --seed \(mirror.seed) --nodes \(mirror.nodes)")
        exit(1)
    }
    exit(0)
}
switch scenario {
case "faults": config = SimScenarios.faults(seed: 1)
case "fidelity": config = SimScenarios.fidelity(seed: 1)
case "clean": break
case "scale": config = SimScenarios.scale(seed: 1, nodes: 1000)
case "catchup": config = SimScenarios.catchUp(seed: 1, releases: Int(value("--base-releases") ?? "10000") ?? 10_000)
default:
    FileHandle.standardError.write("unknown scenario \(scenario)\n".data(using: .utf8)!)
    exit(2)
}
if let s = value("--seed"), let v = UInt64(s) { config.seed = v }
if let s = value("--nodes"), let v = Int(s) { config.nodes = v }
if let s = value("--duration"), let v = Double(s) { config.duration = v }
if let s = value("--settle"), let v = Double(s) { config.settle = v }
if let s = value("--warmup"), let v = Double(s) { config.warmup = v }
if let s = value("--base-releases"), let v = Int(s) { config.baseReleases = v }
if let s = value("--publish-interval"), let v = Double(s) { config.publishInterval = v }
if let s = value("--churn"), let v = Double(s) { config.churnPerHour = v }
if let s = value("--latency"), let v = Double(s) { config.latencyMedian = v }
if let s = value("--catch-up-releases"), let v = Int(s) { config.catchUpReleases = v }
if let s = value("--fanout"), let v = Int(s) { config.gossip.fanout = v }
if let s = value("--lazy"), let v = Int(s) { config.gossip.lazyPushLinks = v }
if let s = value("--anti-entropy"), let v = Double(s) { config.gossip.antiEntropySeconds = v }
let started = Date()
let report = Simulation(config).run()
let seconds = Date().timeIntervalSince(started)
print(report.summary)
print(String(format: "wall %.2f s; %.0f node-steps/s", seconds, Double(report.steps) / max(seconds, 1e-9)))
if !report.failures.isEmpty {
    print("FAILED: replay with: alexandria-sim --scenario \(scenario) --seed \(config.seed) --nodes \(config.nodes)")
    exit(1)
}
