import Foundation
import Testing

/// A leaked publisher key, staged with real node processes (Protocol/manifest-v1.md, "Compromise notices"). Part of
/// the serialized attack suite, so its cluster never runs beside another attack's on a 2-core machine.
extension TrustAttackTests {
    /// The publisher publishes 1.0; a thief with a copy of the key publishes 2.0 from another node; the publisher
    /// signs a notice freezing the log at size 1. Every node then fails the audit of 2.0 (exit 10) while 1.0 still
    /// holds, and a node that joins afterwards never accepts 2.0 at all.
    @Test func aNoticeFreezesTheLogEverywhereAndEarlierReleasesStand() throws {
        let cluster = try Cluster(size: 2)
        defer { cluster.tearDown() }
        let (_, release1) = try cluster.publish(0, name: "demo", version: "1.0", bytes: 64 << 10, seed: 1)
        let thief = try cluster.addKeyHolder(from: 0)
        try cluster.start(thief)
        #expect(eventually(30) { (0...thief).allSatisfy { cluster.audit($0, release1).status == 0 } })

        let (_, release2) = try cluster.publish(thief, name: "demo", version: "2.0", bytes: 64 << 10, seed: 2)
        #expect(eventually(30) { (0..<2).allSatisfy { cluster.audit($0, release2).status == 0 } }, "2.0 spreads")

        let notice = try cluster.clis[0].runCommand(["keys", "compromised", "pub", "--at-size", "1"])
        #expect(notice.status == 0, "\(notice.stderr)")
        for i in 0...thief {
            #expect(
                eventually(30) {
                    let (status, report) = cluster.audit(i, release2)
                    return status == 10 && report["frozenAt"] as? Int == 1
                }, "node \(i) flags 2.0 as after the freeze")
            let (status, report) = cluster.audit(i, release1)
            #expect(status == 0 && report["frozenAt"] as? Int == 1, "node \(i): 1.0 stands: \(report)")
        }
        let shown = try cluster.clis[1].runCommand(["audit", release2, "--offline"])
        print("node 1 after the notice: audit \(release2) → exit \(shown.status)\n\(shown.text)")
        #expect(shown.text.contains("AFTER the freeze"))
        let out = cluster.clis[1].home + "-out"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let fetched = try cluster.clis[1].runCommand(["fetch", release2, "-o", out])
        #expect(fetched.stderr.contains("reported compromised"), "\(fetched.stderr)")

        // The thief cannot publish past the freeze on its own node either, once the notice reached it.
        let again = try cluster.clis[thief].runCommand([
            "publish", cluster.clis[thief].home + "-model-demo-2.0-2", "--name", "demo", "--version", "3.0",
            "--key", "pub", "--assume-log-current",
        ])
        #expect(again.status != 0)

        // A node that joins now learns 1.0 and the notice, and never accepts 2.0.
        let fresh = CLI()
        defer { fresh.cleanUp() }
        _ = try fresh.run("init")
        let node = try NodeProcess(cli: fresh, extra: ["--peer", cluster.nodes[1]!.address])
        defer { node.stop() }
        #expect(
            eventually(30) {
                guard let r = try? fresh.runCommand(["audit", release1, "--offline", "--json"]),
                    let o = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
                else { return false }
                return r.status == 0 && o["frozenAt"] as? Int == 1
            }, "a new node holds 1.0 and the notice")
        Thread.sleep(forTimeInterval: 2)
        let refused = try fresh.runCommand(["audit", release2, "--offline"])
        #expect(refused.status != 0 && refused.status != 9, "\(refused.text)")
    }
}
