import AlexandriaCore
import Crypto
import Foundation
import Testing

/// Strict Ed25519 against the vectors of Protocol/test-vectors/ed25519-strict/ (made by an independent Python
/// script): small-order and non-canonical keys and R, and S ≥ L, are refused; good signatures verify.
@Suite struct Ed25519StrictTests {
    struct File: Decodable {
        struct Vector: Decodable {
            let name: String
            let publicKey: String
            let message: String
            let signature: String
            let valid: Bool
            let why: String
        }
        let version: Int
        let vectors: [Vector]
    }

    static let vectors = (try? Vectors.load("ed25519-strict/vectors.json", as: File.self).vectors) ?? []

    @Test func vectorsAreThere() {
        #expect(Self.vectors.count >= 20)
        #expect(Self.vectors.contains { $0.valid } && Self.vectors.contains { !$0.valid })
    }

    @Test(arguments: vectors.map(\.name))
    func vector(name: String) throws {
        let v = try #require(Self.vectors.first { $0.name == name })
        let key = try #require(Hex.decode(v.publicKey))
        let ok = Ed25519Strict.isValidSignature(
            try #require(Hex.decode(v.signature)), message: try #require(Hex.decode(v.message)), publicKey: key)
        #expect(ok == v.valid, "\(v.name): \(v.why)")
        if v.why.hasPrefix("public key") { #expect(!Ed25519Strict.isAcceptableKey(key)) }
        if v.valid { #expect(Ed25519Strict.isAcceptableKey(key)) }
    }

    @Test func witnessKeysParseOnlyInTheCanonicalForm() {
        let key = Curve25519.Signing.PrivateKey().publicKey.rawRepresentation
        let text = Ed25519Strict.describe(Array(key))
        #expect(Ed25519Strict.parse(text) == Array(key))
        #expect(Ed25519Strict.parse(text.uppercased()) == nil)
        #expect(Ed25519Strict.parse(String(text.dropFirst(8))) == nil)
        #expect(Ed25519Strict.parse("ed25519:" + String(repeating: "00", count: 32)) == nil)
    }
}
