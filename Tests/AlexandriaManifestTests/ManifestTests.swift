import AlexandriaCore
import AlexandriaManifest
import Crypto
import Foundation
import Testing

func sampleManifest(
    key: PublisherKey, version: String = "1.0", paths: [String] = ["model.safetensors", "config.json"],
    logIndex: Int = 0
) throws -> Manifest {
    try Manifest(
        publisher: key.id, name: "tiny", version: version, logIndex: logIndex,
        files: paths.enumerated().map { i, p in
            Manifest.File(
                path: p, size: UInt64(1000 + i), sha256: ContentHash.of(Array(p.utf8)),
                merkleRoot: ContentHash.of(Array((p + "root").utf8)), chunks: 1, chunker: .v1)
        }, lineage: [], license: "apache-2.0", modelCard: nil, created: "2026-11-23T21:00:00Z")
}

@Suite("Manifests, envelopes and paths")
struct ManifestTests {
    let key = PublisherKey.generate()

    @Test func signVerifyAndIdIsHashOfPayload() throws {
        let signed = try SignedManifest(manifest: try sampleManifest(key: key), key: key)
        #expect(signed.id == ContentHash.of(signed.envelope.payload))
        let parsed = try DSSEEnvelope(json: signed.envelope.json)
        let again = try SignedManifest(envelope: parsed, publicKey: key.publicKey)
        #expect(again.manifest == signed.manifest && again.id == signed.id)
        #expect(again.manifest.files.map(\.path) == ["config.json", "model.safetensors"])
    }

    @Test func everyTamperedByteOfTheEnvelopeIsCaught() throws {
        let signed = try SignedManifest(manifest: try sampleManifest(key: key), key: key)
        let json = signed.envelope.json
        var failures = 0
        for i in stride(from: 0, to: json.count, by: 7) {
            var bytes = json
            bytes[i] ^= 0x01
            do {
                _ = try SignedManifest(envelope: try DSSEEnvelope(json: bytes), publicKey: key.publicKey)
                // Flipping a bit in a base64 padding position can decode to the same bytes; those must still verify
                // to the very same manifest id.
                #expect(try DSSEEnvelope(json: bytes).payload == signed.envelope.payload)
            } catch {
                failures += 1
            }
        }
        #expect(failures > json.count / 7 * 9 / 10)
    }

    @Test func wrongKeyAndTruncationAreRefused() throws {
        let signed = try SignedManifest(manifest: try sampleManifest(key: key), key: key)
        let other = PublisherKey.generate()
        #expect(throws: ManifestError(.badSignature, "")) {
            try SignedManifest(envelope: signed.envelope, publicKey: other.publicKey)
        }
        // Validly signed by another key, naming our publisher: refused.
        let forged = try DSSEEnvelope.sign(
            payloadType: Manifest.payloadType, payload: signed.envelope.payload, key: other)
        #expect(throws: ManifestError.self) { try SignedManifest(envelope: forged, publicKey: key.publicKey) }
        #expect(throws: ManifestError.self) { try SignedManifest(envelope: forged, publicKey: other.publicKey) }
        let json = signed.envelope.json
        #expect(throws: ManifestError(.malformed, "")) { try DSSEEnvelope(json: Array(json.prefix(json.count / 2))) }
    }

    @Test func nonCanonicalPayloadIsRefusedEvenWhenSigned() throws {
        let manifest = try sampleManifest(key: key)
        let spaced = Array(
            String(decoding: manifest.payload, as: UTF8.self).replacingOccurrences(of: ",", with: ", ").utf8)
        let envelope = try DSSEEnvelope.sign(payloadType: Manifest.payloadType, payload: spaced, key: key)
        #expect(throws: ManifestError(.malformed, "")) {
            try SignedManifest(envelope: envelope, publicKey: key.publicKey)
        }
    }

    @Test(arguments: [
        "../x", "/etc/passwd", "a/../b", "a//b", "./a", "a/", "a\u{0}b", "a\\b", "", "bell\u{7}", "a/./b",
        "e\u{301}", String(repeating: "x", count: 1025), String(repeating: "y", count: 256) + "/z",
    ])
    func hostilePathsAreRefused(path: String) {
        #expect(throws: ManifestError(.hostilePath, "")) { try PathRules.validate(path) }
        #expect(throws: ManifestError.self) { try sampleManifest(key: key, paths: [path]) }
    }

    @Test func duplicateCaseCollisionAndFileFolderClashes() {
        for paths in [["a.bin", "a.bin"], ["A.bin", "a.bin"], ["a", "a/b"]] {
            #expect(throws: ManifestError(.hostilePath, "")) { try PathRules.validate(all: paths) }
        }
        #expect(throws: Never.self) { try PathRules.validate(all: ["a/b", "a/c", "é", "日本/語.txt"]) }
    }

    @Test func aMillionFileEntriesIsALimitNotACrash() throws {
        var entries: [String] = []
        entries.reserveCapacity(1_000_000)
        let file =
            #"{"chunker":"fastcdc-gear-v1/65536/262144/1048576","chunks":1,"merkleRoot":"\#(String(repeating: "a", count: 64))","path":"f%d","sha256":"\#(String(repeating: "b", count: 64))","size":1}"#
        for i in 0..<1_000_000 { entries.append(file.replacingOccurrences(of: "%d", with: String(i))) }
        let payload = Array(("{\"predicate\":{\"files\":[" + entries.joined(separator: ",") + "]}}").utf8)
        #expect(throws: ManifestError(.limitExceeded, "")) { try Manifest(payload: payload) }
        #expect(throws: ManifestError(.limitExceeded, "")) {
            try sampleManifest(key: key, paths: (0...Manifest.maxFiles).map { "f\($0)" })
        }
    }

    @Test func namesAndVersionsFollowTheRules() {
        #expect(throws: Never.self) { try ReleaseName.validate(name: "llama-3.1_8b", version: "1.0.0+cu121") }
        for (n, v) in [("Llama", "1"), ("", "1"), ("a", ""), ("a", "latest"), ("a/b", "1"), ("a", "1 0"), ("-a", "1")] {
            #expect(throws: ManifestError.self, "\(n)@\(v)") { try ReleaseName.validate(name: n, version: v) }
        }
    }

    @Test func encryptedKeyExportRoundTripsAndWrongPassphraseFails() throws {
        let pem = try key.encryptedPEM(passphrase: Array("correct horse".utf8))
        #expect(pem.contains("ENCRYPTED PRIVATE KEY"))
        let back = try PublisherKey(encryptedPEM: pem, passphrase: Array("correct horse".utf8))
        #expect(back.id == key.id)
        #expect(throws: ManifestError(.badKey, "")) {
            try PublisherKey(encryptedPEM: pem, passphrase: Array("wrong".utf8))
        }
    }
}
