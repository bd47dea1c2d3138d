import AlexandriaCore
import AlexandriaWire
import Crypto
import Foundation
import Testing

@testable import AlexandriaGossip

/// Protocol/test-vectors/gossip-v1/vectors.json, written by an independent Python implementation of the spec.
struct Vectors {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Protocol/test-vectors/gossip-v1/vectors.json")
    nonisolated(unsafe) static let json: [String: Any] = {
        let data = try! Data(contentsOf: url)
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static func hex(_ s: Any?) -> [UInt8] { Hex.decode(s as! String)! }

    static func key(_ label: String) -> Curve25519.Signing.PrivateKey {
        try! Curve25519.Signing.PrivateKey(
            rawRepresentation: Array(SHA256.hash(data: Array("alexandria gossip vectors \(label)".utf8))))
    }

    /// `[label, n]` parts: part i is SHA-256 of "label-i".
    static func ids(_ spec: Any?) -> [ContentHash] {
        var out: [ContentHash] = []
        for part in spec as! [[Any]] {
            let label = part[0] as! String
            let n = part[1] as! Int
            for i in 0..<n { out.append(ContentHash.of(Array("\(label)-\(i)".utf8))) }
        }
        return Array(Set(out)).sorted()
    }
}

@Suite("Gossip values against the Python vectors")
struct GossipVectorTests {
    @Test func cosignatureMatchesAndVerifies() throws {
        let v = Vectors.json
        let c = v["cosignature"] as! [String: Any]
        let body = Array((c["body"] as! String).utf8)
        let parsed = try Cosignature(body: body)
        #expect(parsed.witnessKey == Vectors.hex(v["witnessPublicKey"]))
        #expect(parsed.checkpointText == v["checkpoint"] as! String)
        #expect(parsed.timestamp == UInt64(c["timestamp"] as! Int))
        // Ed25519 is deterministic: signing the same checkpoint at the same time gives the same bytes.
        let ours = try Cosignature.sign(
            checkpointText: v["checkpoint"] as! String, key: Vectors.key("witness"),
            timestamp: UInt64(c["timestamp"] as! Int))
        #expect(ours.body == body)
        // Any change to the body breaks it.
        var tampered = body
        tampered[20] ^= 1
        #expect(throws: GossipError.self) { try Cosignature(body: tampered) }
        let otherTime = String(decoding: body, as: UTF8.self).replacingOccurrences(of: "\n3\n", with: "\n4\n")
        #expect(throws: GossipError.self) { try Cosignature(body: Array(otherTime.utf8)) }
    }

    @Test func availabilityAndDemandMatchAndVerify() throws {
        let v = Vectors.json
        let a = v["availability"] as! [String: Any]
        let body = Vectors.hex(a["body"])
        let parsed = try AvailabilityStatement(body: body)
        #expect(parsed.nodeKey == Vectors.hex(v["nodePublicKey"]))
        #expect(parsed.manifest.bytes == Vectors.hex(a["manifest"]))
        #expect(parsed.holds && parsed.timestampMillis == UInt64(a["timestampMillis"] as! Int))
        #expect(try parsed.signed(with: Vectors.key("node")).body == body)
        var flipped = body
        flipped[77] = 0
        #expect(throws: GossipError.self) { try AvailabilityStatement(body: flipped) }
        #expect(throws: GossipError.self) { try AvailabilityStatement(body: Array(body.dropLast())) }

        let d = Vectors.hex((v["demand"] as! [String: Any])["body"])
        let report = try DemandReport(body: d)
        #expect(report.counts.map(\.fetches) == [42, 7])
        #expect(try report.signed(with: Vectors.key("node")).body == d)
        var forged = d
        forged[47 + 35] ^= 0x01
        #expect(throws: GossipError.self) { try DemandReport(body: forged) }
    }

    @Test func itemIDsAndFingerprints() {
        for item in Vectors.json["items"] as! [[String: Any]] {
            let i = CatalogItem(
                kind: CatalogItem.Kind(rawValue: UInt8(item["kind"] as! Int))!, body: Vectors.hex(item["body"]))
            #expect(i.id.bytes == Vectors.hex(item["id"]))
        }
        for f in Vectors.json["fingerprints"] as! [[String: Any]] {
            let ids = (f["ids"] as! [String]).map { ContentHash(bytes: Hex.decode($0)!)! }
            #expect(Reconciler.fingerprint(ids) == Vectors.hex(f["fingerprint"]))
        }
    }

    /// Replays each Python transcript: every message this side produces must be byte for byte the vector's, and both
    /// sides must learn exactly what they lack.
    @Test func reconciliationTranscriptsMatch() throws {
        for case_ in Vectors.json["reconcile"] as! [[String: Any]] {
            let name = case_["name"] as! String
            let sides = [Vectors.ids(case_["a"]), Vectors.ids(case_["b"])]
            let expected = (case_["messages"] as! [String]).map { Hex.decode($0)! }
            var message: [Reconciler.Range]? = Reconciler.open(sides[0])
            var lacks: [Set<ContentHash>] = [[], []]
            var sender = 0
            var round: UInt8 = 0
            var produced: [[UInt8]] = []
            while let m = message, round < 40 {
                produced.append(WireMessage.reconcile(round: round, ranges: m).encodedPayload)
                let receiver = 1 - sender
                let step = try Reconciler.step(sides[receiver], message: m)
                lacks[receiver].formUnion(step.weLack)
                lacks[sender].formUnion(step.theyLack)
                message = step.reply
                sender = receiver
                round += 1
            }
            #expect(produced == expected, "\(name)")
            #expect(lacks[0] == Set(sides[1]).subtracting(sides[0]), "\(name)")
            #expect(lacks[1] == Set(sides[0]).subtracting(sides[1]), "\(name)")
            #expect(lacks[0].map(\.hex).sorted() == case_["aLacks"] as! [String], "\(name)")
        }
    }

    @Test func framesDecodeAndReencode() throws {
        for (name, hex) in Vectors.json["frames"] as! [String: String] {
            let frame = Hex.decode(hex)!
            let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
            #expect(length == frame.count - 4, "\(name)")
            let message = try WireMessage.decode(type: frame[4], payload: Array(frame[5...]))
            #expect(message.encodedPayload == Array(frame[5...]), "\(name)")
        }
    }
}

@Suite("Set reconciliation")
struct ReconcilerTests {
    /// Random sets of up to a few thousand ids with differences on both sides: the exchange always ends with each
    /// side knowing exactly its missing ids, in few rounds.
    @Test(arguments: [0, 1, 5, 40, 300])
    func convergesOnRandomSets(difference: Int) throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5 {
            let common = (0..<Int.random(in: 0...3000, using: &rng)).map { _ in randomID(&rng) }
            let onlyA = (0..<Int.random(in: 0...difference, using: &rng)).map { _ in randomID(&rng) }
            let onlyB = (0..<(difference - onlyA.count)).map { _ in randomID(&rng) }
            let a = Array(Set(common + onlyA)).sorted()
            let b = Array(Set(common + onlyB)).sorted()
            var lacks: [Set<ContentHash>] = [[], []]
            var message: [Reconciler.Range]? = Reconciler.open(a)
            var sender = 0
            var rounds = 0
            while let m = message {
                rounds += 1
                #expect(rounds < 20)
                if rounds >= 20 { break }
                let step = try Reconciler.step(sender == 0 ? b : a, message: m)
                lacks[1 - sender].formUnion(step.weLack)
                lacks[sender].formUnion(step.theyLack)
                message = step.reply
                sender = 1 - sender
            }
            #expect(lacks[0] == Set(onlyB))
            #expect(lacks[1] == Set(onlyA))
        }
    }

    @Test func refusesMalformedRanges() {
        let x = ContentHash.of([1])
        let y = ContentHash.of([2])
        let (lo, hi) = x < y ? (x, y) : (y, x)
        // Not ending at infinity, out of order, empty.
        #expect(throws: GossipError.self) { try Reconciler.step([], message: [.init(upper: .id(lo), mode: .skip)]) }
        #expect(throws: GossipError.self) {
            try Reconciler.step(
                [],
                message: [
                    .init(upper: .id(hi), mode: .skip), .init(upper: .id(lo), mode: .skip),
                    .init(upper: .infinity, mode: .skip),
                ])
        }
        #expect(throws: GossipError.self) { try Reconciler.step([], message: []) }
        let tooMany = (0..<(GossipLimits.maxIDsPerRange + 1)).map {
            ContentHash.of([UInt8($0 & 0xff), UInt8($0 >> 8)])
        }
        #expect(throws: GossipError.self) {
            try Reconciler.step([], message: [.init(upper: .infinity, mode: .ids(tooMany))])
        }
    }

    @Test func wireMessagesRoundTripAndRefuseOversizedLists() throws {
        let ranges: [Reconciler.Range] = [
            .init(
                upper: .id(ContentHash.of([7])),
                mode: .fingerprint(count: 3, fingerprint: Array(repeating: 9, count: 16))),
            .init(upper: .infinity, mode: .ids([ContentHash.of([8])])),
        ]
        for m in [
            WireMessage.reconcile(round: 3, ranges: ranges), .want([ContentHash.of([1])]), .peersQuery,
            .peers([PeerRecord(nodeKey: Array(repeating: 1, count: 32), host: "::1", port: 9, lastSeen: 5)]),
            .items(path: [Array(repeating: 2, count: 8)], items: [CatalogItem(kind: .manifest, body: [1, 2, 3])]),
        ] {
            #expect(try WireMessage.decode(type: m.type, payload: m.encodedPayload) == m)
        }
        // An ITEMS message claiming an unknown kind, or a body larger than the limit, is refused before allocation.
        var bad = WireMessage.items(path: [], items: [CatalogItem(kind: .manifest, body: [1])]).encodedPayload
        bad[3] = 99
        #expect(throws: WireError.self) { try WireMessage.decode(type: 0x50, payload: bad) }
        var huge = WireMessage.items(path: [], items: [CatalogItem(kind: .manifest, body: [1])]).encodedPayload
        huge.replaceSubrange(4..<8, with: [0x7f, 0xff, 0xff, 0xff])
        #expect(throws: WireError.self) { try WireMessage.decode(type: 0x50, payload: huge) }
    }
}

func randomID(_ rng: inout SystemRandomNumberGenerator) -> ContentHash {
    ContentHash(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) })!
}

@Suite("Strict Ed25519 in gossip items")
struct StrictGossipSignatureTests {
    /// The identity point as a node key, with R = identity and S = 0: a "signature" for every message under lax
    /// checks. Every kind of node-key item must refuse it.
    static let identity = Hex.decode("01" + String(repeating: "00", count: 31))!
    static let universal = Hex.decode("01" + String(repeating: "00", count: 63))!

    @Test func smallOrderKeysSignNoItem() throws {
        let manifest = ContentHash.of([1, 2, 3])
        let availability = AvailabilityStatement(
            nodeKey: Self.identity, manifest: manifest, timestampMillis: 1, holds: true)
        let body = availability.signedBytes + Self.universal
        #expect(throws: GossipError.self) { try AvailabilityStatement(body: body) }
        let demand = DemandReport(nodeKey: Self.identity, timestampMillis: 1, counts: [(manifest, 1)])
        #expect(throws: GossipError.self) { try DemandReport(body: demand.signedBytes + Self.universal) }
        let cosignature = Cosignature(
            checkpointText: "alexandria.dev/log/" + String(repeating: "ab", count: 32) + "\n1\n"
                + Data(repeating: 0, count: 32).base64EncodedString() + "\n",
            witnessKey: Self.identity, timestamp: 1, signature: Self.universal)
        #expect(throws: GossipError.self) { try Cosignature(body: cosignature.body) }
        // A real key's cosignature still verifies.
        let key = Curve25519.Signing.PrivateKey()
        let good = try Cosignature.sign(checkpointText: cosignature.checkpointText, key: key, timestamp: 1)
        #expect(try Cosignature(body: good.body) == good)
    }
}
