import AlexandriaCatalog
import AlexandriaCore
import AlexandriaGossip
import AlexandriaManifest
import AlexandriaWire
import Crypto
import Foundation
import Testing

/// The attacks of issue 10 on the fork choice, staged with real node processes (Protocol/gossip-v1.md, "Which
/// binding stands"; Protocol/threat-model.md).
@Suite("Attacks on which binding stands", .serialized, .offThePool)
struct TrustAttackTests {
    /// The witness strings of an audit report.
    static func witnesses(_ report: [String: Any]) -> [String] { report["witnesses"] as? [String] ?? [] }

    /// What a modified binary on the key holder's machine does: two fresh node keys cosign the newest checkpoint of
    /// the fork in `home`, with timestamps `backdate` seconds in the past, written into that home's catalog (the
    /// daemon there gossips them on).
    static func cosignAsSybils(home: String, publisher: PublisherID, count: Int, backdate: UInt64) throws -> [String] {
        let catalog = try Catalog(path: home + "/catalog.sqlite")
        guard let (checkpoint, _) = try catalog.checkpoints(publisher).last else { return [] }
        var keys: [String] = []
        for _ in 0..<count {
            let key = Curve25519.Signing.PrivateKey()
            let item = try Cosignature.sign(
                checkpointText: checkpoint.text, key: key,
                timestamp: UInt64(Date().timeIntervalSince1970) - backdate
            ).item
            _ = try catalog.accept(item)
            keys.append(Ed25519Strict.describe(Array(key.publicKey.rawRepresentation)))
        }
        return keys
    }

    /// (a) A key holder publishes other bytes under a published name from a partitioned machine, its node witnesses
    /// them, and two fresh keys cosign that checkpoint claiming two days ago. Without a policy every node keeps the
    /// binding it saw first, and a node that learned both together refuses the name; with a policy that trusts the
    /// honest mirrors the original stands everywhere, the key holder's node included, and the Sybils show as
    /// untrusted.
    @Test func aBackdatedSybilOverwriteMovesNoBinding() throws {
        let cluster = try Cluster(size: 3)
        defer { cluster.tearDown() }
        let (original, release) = try cluster.publish(0, name: "demo", version: "1.0", bytes: 256 << 10, seed: 1)
        #expect(eventually(30) { (0..<3).allSatisfy { Self.witnesses(cluster.audit($0, original).report).count >= 3 } })
        let honest = (0..<3).map(cluster.witnessKey)
        let publisher = PublisherID(hex: String(release.prefix(64)))!

        // The key holder, partitioned from the network, publishes other weights under the same name.
        let rogue = try cluster.addKeyHolder(from: 0)
        cluster.partition([0, 1, 2], [rogue])
        let (forged, forgedRelease) = try cluster.publish(
            rogue, name: "demo", version: "1.0", bytes: 256 << 10, seed: 2)
        #expect(forgedRelease == release && forged != original)
        try cluster.start(rogue)
        #expect(
            eventually(30) {
                Self.witnesses(cluster.audit(rogue, forged).report).contains { $0.hasPrefix(cluster.witnessKey(rogue)) }
            }, "the key holder's own node witnesses the fork")
        let sybils = try Self.cosignAsSybils(
            home: cluster.clis[rogue].home, publisher: publisher, count: 2, backdate: 2 * 86400)
        #expect(eventually(30) { Self.witnesses(cluster.audit(rogue, forged).report).count >= 3 })

        // Two fresh clients that join after the fork: one with no policy, one trusting the two honest mirrors.
        let plain = CLI()
        let trusting = CLI()
        defer {
            plain.cleanUp()
            trusting.cleanUp()
        }
        let policy = "[trust]\nwitnesses = [\"\(honest[1])\", \"\(honest[2])\"]\nquorum = 2\n"
        for (client, extra) in [(plain, ""), (trusting, policy)] {
            _ = try client.run("init")
            try "[mirror]\nmode = \"pinned\"\n\(extra)".write(
                toFile: client.home + "/config.toml", atomically: true, encoding: .utf8)
        }

        cluster.heal()
        // No policy: every node keeps the binding it saw first; the Sybils' claimed times move nothing.
        for i in 0..<3 {
            #expect(
                eventually(30) {
                    let (status, report) = cluster.audit(i, release)
                    return status == 6 && report["manifestID"] as? String == original
                }, "node \(i) keeps the original")
        }
        #expect(
            eventually(30) {
                let (status, report) = cluster.audit(rogue, release)
                return status == 6 && report["manifestID"] as? String == forged
                    && (report["settlement"] as? String) == "held"
            }, "the key holder's node keeps what it saw first")
        let honestView = try cluster.clis[1].runCommand(["audit", release, "--offline"])
        print("honest mirror, no policy: audit \(release) → exit \(honestView.status)\n\(honestView.text)")
        // (b) No honest witness put its key on the fork: each cosigns only its own log, consistently.
        let forkWitnesses = (cluster.audit(rogue, release).report["contenders"] as? [String] ?? [])
            .filter { $0.hasPrefix(forged) }.joined()
        for key in honest { #expect(!forkWitnesses.contains(key), "\(key) cosigned the fork") }
        // The Sybils are untrusted in every audit that shows them.
        let rogueAudit = cluster.audit(rogue, release).report
        for s in sybils {
            #expect(Self.witnesses(rogueAudit).contains { $0.hasPrefix(s + " untrusted") }, "\(rogueAudit)")
        }

        let plainNode = try NodeProcess(cli: plain, extra: ["--peer", cluster.nodes[1]!.address])
        let trustingNode = try NodeProcess(cli: trusting, extra: ["--peer", cluster.nodes[2]!.address])
        defer {
            plainNode.stop()
            trustingNode.stop()
        }
        // A fresh node with no policy learned both together: it refuses the name and lists the contenders.
        #expect(
            eventually(30) {
                guard let r = try? plain.runCommand(["audit", release, "--offline"]) else { return false }
                return r.status == 6 && r.stderr.contains(original) && r.stderr.contains(forged)
                    && r.stderr.contains("contested")
            }, "a fresh node with no policy refuses the contested name")
        let refused = try plain.runCommand(["audit", release, "--offline"])
        print("fresh node, no policy: audit \(release) → exit \(refused.status)\n\(refused.stderr)")
        // Fetch by exact manifest id still works, for either side.
        let out = plain.home + "-original"
        let fetched = try plain.runCommand(["fetch", original, "-o", out, "--peer", cluster.nodes[1]!.address])
        #expect(fetched.status == 0, "\(fetched.stderr)")
        // A fresh node trusting the honest mirrors resolves to the original, settled by quorum.
        #expect(
            eventually(30) {
                guard let r = try? trusting.runCommand(["audit", release, "--offline", "--json"]),
                    let o = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
                else { return false }
                return r.status == 6 && o["manifestID"] as? String == original && o["settlement"] as? String == "quorum"
            }, "a fresh node with the policy resolves to the original")
        let shown = try trusting.runCommand(["audit", release, "--offline", "--min-witnesses", "2"])
        print("fresh node, policy trusting the mirrors: audit \(release) → exit \(shown.status)\n\(shown.text)")
        #expect(shown.text.contains("untrusted"))

        // The same policy on the key holder's node: the original stands there too, although it saw the fork first.
        cluster.stop(rogue)
        try cluster.writeConfig(rogue, extra: policy)
        try cluster.start(rogue)
        #expect(
            eventually(30) {
                let (status, report) = cluster.audit(rogue, release)
                return status == 6 && report["manifestID"] as? String == original
                    && report["settlement"] as? String == "quorum"
            }, "the policy settles the key holder's node on the original")
        let r = try cluster.clis[rogue].runCommand(["audit", release, "--offline"])
        print("key holder's node with the policy: audit \(release) → exit \(r.status)\n\(r.text)")
    }
}

@Suite("Small-order node keys against a real node", .serialized, .offThePool)
struct SmallOrderIdentityTests {
    /// Handshakes as `nodeKey` with a signature made by `sign` over the transcript, then sends PING; returns whether
    /// PONG came back, and whether the node closed the connection.
    static func handshake(
        port: Int, nodeKey: [UInt8], sign: ([UInt8]) throws -> [UInt8]
    ) throws -> (pong: Bool, closed: Bool) {
        guard let client = WireClient(port: port) else { return (false, false) }
        var nonce = [UInt8](repeating: 0, count: 32)
        for i in 0..<32 { nonce[i] = .random(in: 0...255) }
        let hello = WireMessage.hello(minVersion: 1, maxVersion: 1, nodeKey: nodeKey, nonce: nonce, listenPort: 0)
        client.send(hello)
        guard case .message(0x01, let theirs) = client.receive() else { return (false, true) }
        let transcript = Array("alexandria/wire/v1/auth".utf8) + [0x00] + hello.encodedPayload + theirs
        client.send(.auth(signature: try sign(transcript)))
        client.send(.ping(42))
        var pong = false
        while true {
            switch client.receive() {
            case .message(0x04, _): pong = true
            case .message: continue
            case .closed: return (pong, true)
            case .timedOut: return (pong, false)
            }
            if pong { return (true, false) }
        }
    }

    /// (c) An independent client authenticates as the identity point `01 00…00` with R = identity, S = 0 (which
    /// satisfies the verification equation for every transcript under lax checks). The node must close, not answer
    /// PING. The same client with a real key gets PONG, so the client itself is right.
    @Test func aSmallOrderIdentityIsRefusedAtTheHandshake() throws {
        let cli = CLI()
        defer { cli.cleanUp() }
        _ = try cli.run("init")
        let node = try NodeProcess(cli: cli)
        defer { node.stop() }
        let real = Curve25519.Signing.PrivateKey()
        let good = try Self.handshake(port: node.port, nodeKey: Array(real.publicKey.rawRepresentation)) {
            Array(try real.signature(for: $0))
        }
        #expect(good.pong, "a correct client gets PONG")
        for keyHex in [
            "0100000000000000000000000000000000000000000000000000000000000000",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ] {
            let identity = Hex.decode(keyHex)!
            let attack = try Self.handshake(port: node.port, nodeKey: identity) { _ in
                Hex.decode("01" + String(repeating: "00", count: 63))!
            }
            #expect(!attack.pong && attack.closed, "small-order key \(keyHex): \(attack)")
        }
    }
}
