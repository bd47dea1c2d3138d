import AlexandriaCore
import Foundation
import Testing

/// Several `node run` processes on loopback that find each other through one bootstrap address, with short gossip
/// and mirror intervals so a test takes seconds. Every wait is bounded; nothing asserts on a duration.
final class Cluster {
    var clis: [CLI] = []
    var nodes: [NodeProcess?] = []
    var dropFiles: [String]
    let config: String

    init(size: Int, mirror: String = "mode = \"all\"") throws {
        config = """
            [gossip]
            anti_entropy = "500ms"
            peer_exchange = "2s"

            [mirror]
            \(mirror)
            interval = "500ms"
            holder_ttl = "4s"
            demand_report = "2s"
            """
        var drops: [String] = []
        for _ in 0..<size {
            let cli = CLI()
            _ = try cli.run("init")
            drops.append(cli.home + "/drop-peers")
            FileManager.default.createFile(atPath: cli.home + "/drop-peers", contents: Data())
            try (config + "\n[test]\ndrop_peers_file = \"\(cli.home)/drop-peers\"\n").write(
                toFile: cli.home + "/config.toml", atomically: true, encoding: .utf8)
            clis.append(cli)
        }
        dropFiles = drops
        for i in 0..<size { try start(i) }
    }

    func start(_ i: Int, port: Int? = nil) throws {
        let extra = i == 0 || nodes.isEmpty ? [] : ["--peer", nodes[0]?.address ?? ""]
        let node = try NodeProcess(cli: clis[i], extra: extra.filter { !$0.isEmpty }, port: port)
        if i < nodes.count { nodes[i] = node } else { nodes.append(node) }
    }

    func stop(_ i: Int) {
        nodes[i]?.stop()
        nodes[i] = nil
    }

    /// Waits until every running node's peer table lists every other node (peer exchange has run).
    func waitForMesh(_ seconds: Double = 60) -> Bool {
        let running = (0..<nodes.count).filter { nodes[$0] != nil }
        return eventually(seconds) {
            running.allSatisfy { i in
                let r = try? clis[i].runCommand(["peers", "--json"])
                let o = r.flatMap { try? JSONSerialization.jsonObject(with: $0.stdout) as? [String: Any] }
                return ((o?["table"] as? [Any])?.count ?? 0) >= running.count - 1
            }
        }
    }

    func tearDown() {
        for n in nodes { n?.stop() }
        for c in clis { c.cleanUp() }
    }

    /// `status --json` of node i.
    func status(_ i: Int) -> [String: Any] {
        guard let r = try? clis[i].runCommand(["status", "--json"]),
            let o = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        else { return [:] }
        return o
    }

    func items(_ i: Int) -> Int { status(i)["catalogItems"] as? Int ?? -1 }

    func nodeKey(_ i: Int) -> String {
        ((status(i)["node"] as? [String: Any])?["node"] as? String) ?? ""
    }

    /// Node i's key as a witness, `ed25519:<64 hex>` (from `status`, whether or not its node runs).
    func witnessKey(_ i: Int) -> String { status(i)["witnessKey"] as? String ?? "" }

    /// Node i's key, 64 hex digits.
    func keyHex(_ i: Int) -> String { String(witnessKey(i).dropFirst("ed25519:".count)) }

    /// Rewrites node i's config: the cluster's settings, `extra` tables, and its partition switch.
    func writeConfig(_ i: Int, extra: String = "") throws {
        try (config + "\n" + extra + "\n[test]\ndrop_peers_file = \"\(dropFiles[i])\"\n").write(
            toFile: clis[i].home + "/config.toml", atomically: true, encoding: .utf8)
    }

    /// Adds a home (not started) holding a copy of node `from`'s publisher key `pub` and none of its log: a key
    /// restored from a backup on another machine. Returns its index.
    func addKeyHolder(from: Int) throws -> Int {
        let rogue = CLI()
        _ = try rogue.run("init")
        let pass = rogue.home + "-pass"
        try "pw\n".write(toFile: pass, atomically: true, encoding: .utf8)
        let pem = rogue.home + "-key.pem"
        #expect(try clis[from].runCommand(["keys", "export", "pub", "-o", pem, "--passphrase-file", pass]).status == 0)
        #expect(try rogue.runCommand(["keys", "import", pem, "--name", "pub", "--passphrase-file", pass]).status == 0)
        clis.append(rogue)
        nodes.append(nil)
        let drop = rogue.home + "/drop-peers"
        FileManager.default.createFile(atPath: drop, contents: Data())
        dropFiles.append(drop)
        try writeConfig(clis.count - 1)
        return clis.count - 1
    }

    /// Audit of REF on node i as JSON, with its exit status.
    func audit(_ i: Int, _ ref: String) -> (status: Int32, report: [String: Any]) {
        guard let r = try? clis[i].runCommand(["audit", ref, "--offline", "--json"]) else { return (-1, [:]) }
        return (r.status, (try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]) ?? [:])
    }

    /// Drops traffic between the nodes of `a` and those of `b` (both ways), as a network partition would.
    func partition(_ a: [Int], _ b: [Int]) {
        let keysA = a.map(keyHex)
        let keysB = b.map(keyHex)
        for i in a {
            FileManager.default.createFile(atPath: dropFiles[i], contents: Data(keysB.joined(separator: "\n").utf8))
        }
        for i in b {
            FileManager.default.createFile(atPath: dropFiles[i], contents: Data(keysA.joined(separator: "\n").utf8))
        }
    }

    func heal() {
        for f in dropFiles { FileManager.default.createFile(atPath: f, contents: Data()) }
    }

    /// Publishes a generated model of `bytes` on node i; returns (manifest id, publisher/name@version).
    func publish(
        _ i: Int, name: String, version: String, bytes: Int, seed: UInt64, key: String = "pub"
    ) throws -> (
        String, String
    ) {
        let cli = clis[i]
        let dir = cli.home + "-model-\(name)-\(version)-\(seed)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        FileManager.default.createFile(
            atPath: dir + "/model.safetensors", contents: Data(randomBytes(bytes, seed: seed)))
        FileManager.default.createFile(atPath: dir + "/config.json", contents: Data("{\"seed\": \(seed)}\n".utf8))
        if !FileManager.default.fileExists(atPath: cli.home + "/keys/publishers/\(key).pem") {
            _ = try cli.run("keys", "generate", key)
        }
        let r = try cli.runCommand(
            ["publish", dir, "--name", name, "--version", version, "--key", key, "--json", "--assume-log-current"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try JSONSerialization.jsonObject(with: r.stdout) as! [String: Any]
        return (o["manifestID"] as! String, o["release"] as! String)
    }
}

/// Waits up to `seconds` for `condition`, checking every quarter second.
func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        Thread.sleep(forTimeInterval: 0.25)
    }
    return condition()
}

@Suite("Gossip and replication across node processes", .serialized, .offThePool)
struct ClusterTests {
    @Test func catalogConverges() throws {
        let cluster = try Cluster(size: 4)
        defer { cluster.tearDown() }
        let (manifest, release) = try cluster.publish(0, name: "demo", version: "1.0", bytes: 1 << 20, seed: 1)
        // Everyone learns the release (and, as mirrors, witnesses and holds it).
        #expect(
            eventually(30) {
                (0..<4).allSatisfy { cluster.audit($0, release).report["manifestID"] as? String == manifest }
            })
        #expect(eventually(30) { Set((0..<4).map(cluster.items)).count == 1 })
        // Witnesses: the mirrors cosigned; with no [trust] policy every witness counts for --min-witnesses.
        #expect(eventually(30) { (cluster.audit(1, manifest).report["witnesses"] as? [String])?.count ?? 0 >= 3 })
        #expect(try cluster.clis[1].runCommand(["audit", manifest, "--offline", "--min-witnesses", "3"]).status == 0)
        #expect(try cluster.clis[1].runCommand(["audit", manifest, "--offline", "--min-witnesses", "9"]).status == 8)
    }

    @Test func anOfflineNodeCatchesUpAndAPartitionHeals() throws {
        let cluster = try Cluster(size: 4)
        defer { cluster.tearDown() }
        #expect(eventually(20) { (0..<4).allSatisfy { !cluster.nodeKey($0).isEmpty } })
        let port3 = cluster.nodes[3]!.port
        cluster.stop(3)
        let (_, first) = try cluster.publish(0, name: "offline", version: "1", bytes: 256 << 10, seed: 3)
        #expect(eventually(20) { cluster.audit(1, first).status == 0 })
        try cluster.start(3, port: port3)
        #expect(eventually(30) { cluster.audit(3, first).report["release"] as? String == first }, "catch-up")
        // Partition {0,1} from {2,3}; a release published on 0 stays on its side until the partition heals.
        cluster.partition([0, 1], [2, 3])
        Thread.sleep(forTimeInterval: 1.5)
        let (_, second) = try cluster.publish(0, name: "partitioned", version: "1", bytes: 256 << 10, seed: 4)
        #expect(eventually(20) { cluster.audit(1, second).report["release"] as? String == second })
        Thread.sleep(forTimeInterval: 2)
        #expect(cluster.audit(2, second).report["release"] == nil, "the partition leaked")
        cluster.heal()
        #expect(
            eventually(30) { (2...3).allSatisfy { cluster.audit($0, second).report["release"] as? String == second } })
        #expect(eventually(30) { Set((0..<4).map(cluster.items)).count == 1 })
    }

    @Test func mirrorsKeepTheReplicationFactorAndServeWhenThePublisherIsGone() throws {
        let cluster = try Cluster(size: 5, mirror: "mode = \"factor\"\nreplication_factor = 2")
        defer { cluster.tearDown() }
        // Placement ranks the live nodes a mirror knows; let peer exchange run first.
        #expect(cluster.waitForMesh())
        let (manifest, _) = try cluster.publish(0, name: "rf", version: "1", bytes: 2 << 20, seed: 5)
        /// Running nodes that hold every chunk of the release.
        func holding() -> Set<Int> {
            Set(
                (0..<5).filter { i in
                    guard cluster.nodes[i] != nil else { return false }
                    let mirror = (cluster.status(i)["node"] as? [String: Any])?["mirror"] as? [String: String]
                    return mirror?["releasesHeld"] == "1"
                })
        }
        #expect(eventually(30) { holding().count >= 2 }, "the publisher plus one mirror")
        // Rendezvous placement: the factor is met without every mirror pulling (a mirror whose view of the
        // network was still forming may add one more).
        Thread.sleep(forTimeInterval: 2)
        #expect(holding().count < 5, "\(holding())")
        // The publisher goes offline; the factor holds with the mirrors.
        cluster.stop(0)
        #expect(eventually(40) { holding().count >= 2 }, "re-replicated after the publisher left")
        // A fresh client fetches by manifest id with no --peer: its node learned the holders through gossip.
        let client = CLI()
        defer { client.cleanUp() }
        _ = try client.run("init")
        try "[mirror]\nmode = \"pinned\"\n".write(
            toFile: client.home + "/config.toml", atomically: true, encoding: .utf8)
        let node = try NodeProcess(cli: client, extra: ["--peer", cluster.nodes[holding().first!]!.address])
        #expect(
            eventually(20) { (try? client.run("audit", manifest, "--offline").status) == 0 },
            "the client learned the release")
        #expect(
            eventually(20) {
                let r = try? client.runCommand(["peers", "--json"])
                let o = r.flatMap { try? JSONSerialization.jsonObject(with: $0.stdout) as? [String: Any] }
                return ((o?["table"] as? [Any])?.count ?? 0) > 0
            }, "the client's node has a peer table")
        let r = try client.runCommand(["fetch", manifest, "-o", client.home + "-release"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try client.run("audit", manifest).status == 0)
        node.stop()
        // Holders die until one is left; once their statements age out the others restore the factor from it.
        let before = holding()
        let victims = Array(before.sorted().dropFirst())
        for v in victims { cluster.stop(v) }
        let live = (0..<5).filter { cluster.nodes[$0] != nil }
        #expect(live.count >= 2, "a node must be left to replicate to: \(before)")
        #expect(eventually(40) { holding().count >= 2 }, "re-replicated after holders died: \(before) → \(holding())")
        #expect(holding().isDisjoint(with: victims))
    }

    @Test func evictionKeepsTheBudgetAndNeverTheLastCopy() throws {
        // Mirrors with room for one 2 MiB release (budget 3 MiB); the publisher's node keeps everything.
        let cluster = try Cluster(size: 3, mirror: "mode = \"all\"\nbudget = \"3 MiB\"")
        defer { cluster.tearDown() }
        try
            (cluster.config.replacingOccurrences(of: "budget = \"3 MiB\"", with: "budget = \"1 GiB\"")
            + "\n[test]\ndrop_peers_file = \"\(cluster.dropFiles[0])\"\n").write(
                toFile: cluster.clis[0].home + "/config.toml", atomically: true, encoding: .utf8)
        let port0 = cluster.nodes[0]!.port
        cluster.stop(0)
        try cluster.start(0, port: port0)
        /// Whether node i's store holds the weights generated with `seed`.
        func holds(_ i: Int, _ seed: UInt64) -> Bool {
            let address = ContentHash.of(randomBytes(2 << 20, seed: seed)).hex
            return (try? cluster.clis[i].run("ls").text.contains(address)) ?? false
        }
        let first: UInt64 = 11
        let second: UInt64 = 12
        _ = try cluster.publish(0, name: "old", version: "1", bytes: 2 << 20, seed: first)
        #expect(eventually(30) { holds(1, first) && holds(2, first) })
        let (pinned, _) = try cluster.publish(0, name: "new", version: "1", bytes: 2 << 20, seed: second)
        // Full budgets: the newer release (no demand yet) does not displace the older. Pinned, it must: each mirror
        // takes it, and at least one drops the older to get back within its budget (the older's designated keeper,
        // by rendezvous order among its holders, keeps it whatever the budget).
        for i in 1...2 {
            #expect(eventually(20) { cluster.audit(i, pinned).status == 0 })
            #expect(try cluster.clis[i].run("pin", pinned).status == 0)
        }
        #expect(eventually(40) { holds(1, second) && holds(2, second) })
        #expect(eventually(30) { !holds(1, first) || !holds(2, first) })
        // The older release is never gone from the network: the publisher's node keeps it.
        #expect(holds(0, first))
    }
}
