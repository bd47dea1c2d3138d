import Foundation
import Testing

@testable import AlexandriaObjectStore

/// Protocol/test-vectors/s3-sigv4/vectors.json, made once by botocore's S3SigV4Auth (generate.py beside it): our
/// signer must agree with it on the canonical request, the string to sign and the Authorization header.
@Suite("SigV4 against botocore's vectors")
struct SigV4Tests {
    struct Case: Decodable {
        var name: String
        var method: String
        var bucket: String
        var key: String?
        var path: String
        var query: [[String]]
        var headers: [[String]]
        var payloadSHA256: String
        var region: String
        var accessKey: String
        var secretKey: String
        var amzDate: String
        var canonicalRequest: String
        var stringToSign: String
        var authorization: String
    }

    struct File: Decodable {
        var generator: String
        var cases: [Case]
    }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Protocol/test-vectors/s3-sigv4/vectors.json")
        let data = try! Data(contentsOf: url)
        return try! JSONDecoder().decode(File.self, from: data).cases
    }()

    @Test("the file holds the cases") func loaded() {
        #expect(Self.cases.count >= 15)
    }

    @Test(arguments: cases.map(\.name))
    func matchesBotocore(_ name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        #expect(S3Path.encode(bucket: c.bucket, key: c.key) == c.path)
        let signer = SigV4Signer(accessKey: c.accessKey, secretKey: c.secretKey, region: c.region)
        let s = signer.sign(
            method: c.method, path: c.path, query: c.query.map { ($0[0], $0[1]) },
            headers: c.headers.map { ($0[0], $0[1]) }, payloadSHA256: c.payloadSHA256, amzDate: c.amzDate)
        #expect(s.canonicalRequest == c.canonicalRequest)
        #expect(s.stringToSign == c.stringToSign)
        #expect(s.authorization == c.authorization)
    }

    @Test(
        "amz-date from Unix seconds",
        arguments: [
            (Int64(0), "19700101T000000Z"), (Int64(1_795_993_509), "20261129T230509Z"),
            (Int64(951_782_400), "20000229T000000Z"), (Int64(4_102_444_799), "20991231T235959Z"),
        ])
    func amzDate(_ seconds: Int64, _ expected: String) {
        #expect(SigV4Signer.amzDate(unixSeconds: seconds) == expected)
    }

    @Test("base64 of MD5 as Content-MD5 wants it")
    func base64() {
        #expect(S3Client.base64([]) == "")
        #expect(S3Client.base64(Array("f".utf8)) == "Zg==")
        #expect(S3Client.base64(Array("fo".utf8)) == "Zm8=")
        #expect(S3Client.base64(Array("foobar".utf8)) == "Zm9vYmFy")
    }
}
