import AlexandriaCore
import Crypto
import Testing

@Suite("SHA-256 streams (the two-way SHA-NI kernel) against swift-crypto")
struct SHA256StreamTests {
    @Test(arguments: [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 65_536, 1_048_577])
    func oneShotMatches(length: Int) {
        let data = Vectors.counterBytes(seed: UInt64(length), length: length)
        let expected = ContentHash(SHA256.hash(data: data))
        #expect(data.withUnsafeBytes { SHA256Stream.hash($0) } == expected)
    }

    @Test func pairedStreamsOfDifferentLengthsAndSplitsMatch() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<40 {
            let a = Vectors.counterBytes(seed: rng.next(), length: Int.random(in: 0..<300_000, using: &rng))
            let b = Vectors.counterBytes(seed: rng.next(), length: Int.random(in: 0..<300_000, using: &rng))
            var sa = SHA256Stream()
            var sb = SHA256Stream()
            var i = 0
            var j = 0
            a.withUnsafeBytes { pa in
                b.withUnsafeBytes { pb in
                    while i < a.count || j < b.count {
                        let ni = min(a.count - i, Int.random(in: 0..<70_000, using: &rng))
                        let nj = min(b.count - j, Int.random(in: 0..<70_000, using: &rng))
                        SHA256Stream.update(
                            &sa, UnsafeRawBufferPointer(rebasing: pa[i..<i + ni]), &sb,
                            UnsafeRawBufferPointer(rebasing: pb[j..<j + nj]))
                        i += ni
                        j += nj
                    }
                }
            }
            #expect(sa.finalize() == ContentHash(SHA256.hash(data: a)))
            #expect(sb.finalize() == ContentHash(SHA256.hash(data: b)))
        }
    }

    @Test func hardwarePathIsUsedWhereAvailable() {
        // Not an assertion about this machine's CPU: a record in the test log of which path ran.
        print("SHA-NI in use: \(SHA256Stream.hardwareAccelerated)")
        let data = [UInt8](repeating: 0x61, count: 3)
        #expect(
            data.withUnsafeBytes { SHA256Stream.hash($0) }.hex
                == "9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0")
    }
}
