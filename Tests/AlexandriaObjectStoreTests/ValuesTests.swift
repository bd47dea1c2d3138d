import NIOCore
import Testing

@testable import AlexandriaObjectStore

@Suite("Object store values: XML, credentials, lease rules, endpoint parsing")
struct ValuesTests {
    @Test("XML: repeated blocks, entities, truncation markers")
    func xml() {
        let xml: Substring = """
            <?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">\
            <IsTruncated>true</IsTruncated><NextContinuationToken>a&amp;b</NextContinuationToken>\
            <Contents><Key>p/a&lt;1&gt;&#x263A;&#65;</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag></Contents>\
            <Contents><Key>p/b</Key><Size>0</Size></Contents></ListBucketResult>
            """
        let blocks = MiniXML.blocks("Contents", in: xml)
        #expect(blocks.count == 2)
        #expect(MiniXML.text("Key", in: blocks[0]) == "p/a<1>☺A")
        #expect(MiniXML.text("ETag", in: blocks[0]) == "\"abc\"")
        #expect(MiniXML.text("NextContinuationToken", in: xml) == "a&b")
        #expect(MiniXML.text("Missing", in: xml) == nil)
        #expect(MiniXML.blocks("Contents", in: "<Contents><Key>cut short") == [])
        #expect(MiniXML.decode("&bogus; & &#xFFFFFFFF;") == "&bogus; & &#xFFFFFFFF;")
        #expect(MiniXML.escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&apos;")
    }

    @Test("credentials: environment first, then the file's profile")
    func credentials() throws {
        let env = try S3Credentials.resolve(
            environment: ["AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"], file: nil)
        #expect(env.accessKey == "id" && env.secretKey == "secret")
        let text = """
            # comment
            [default]
            aws_access_key_id = d
            aws_secret_access_key=ds
            [profile other]
            aws_access_key_id = o
              aws_secret_access_key = os
            """
        #expect(S3Credentials.parse(text, profile: "default")?.secretKey == "ds")
        #expect(S3Credentials.parse(text, profile: "other")?.accessKey == "o")
        #expect(S3Credentials.parse(text, profile: "absent") == nil)
        #expect(throws: ObjectStoreError(.configuration, "")) { try S3Credentials.resolve(environment: [:], file: nil) }
        #expect(throws: ObjectStoreError(.configuration, "")) {
            try S3Credentials.resolve(environment: [:], file: "/nonexistent/credentials")
        }
    }

    @Test("lease record round trip and strict parsing")
    func leaseRecord() {
        let r = LeaseRecord(holder: "node-a", token: String(repeating: "ab", count: 16), expiresMilliseconds: 42)
        #expect(LeaseRecord(parsing: r.encoded) == r)
        #expect(LeaseRecord(parsing: r.encoded + "x") == nil)
        #expect(LeaseRecord(parsing: r.encoded.replacingOccurrences(of: "expires 42", with: "expires x")) == nil)
        #expect(LeaseRecord(parsing: "") == nil)
    }

    @Test("lease decisions: free, ours, held, expired with skew")
    func leasePolicy() {
        let p = LeasePolicy(ttlMilliseconds: 10_000, skewMilliseconds: 1_000)
        let mine = String(repeating: "1", count: 32)
        let theirs = String(repeating: "2", count: 32)
        let write = LeasePolicy.Decision.write(LeaseRecord(holder: "a", token: mine, expiresMilliseconds: 15_000))
        #expect(p.decide(current: nil, holder: "a", token: mine, nowMilliseconds: 5_000) == write)
        let own = LeaseRecord(holder: "a", token: mine, expiresMilliseconds: 9_000)
        #expect(p.decide(current: own, holder: "a", token: mine, nowMilliseconds: 5_000) == write)
        let other = LeaseRecord(holder: "b", token: theirs, expiresMilliseconds: 5_500)
        #expect(
            p.decide(current: other, holder: "a", token: mine, nowMilliseconds: 5_000)
                == .heldBy(holder: "b", untilMilliseconds: 6_500))
        // Expired, but not yet past the skew allowance.
        #expect(
            p.decide(current: other, holder: "a", token: mine, nowMilliseconds: 6_000)
                == .heldBy(holder: "b", untilMilliseconds: 6_500))
        #expect(
            p.decide(current: other, holder: "a", token: mine, nowMilliseconds: 6_500)
                == .write(LeaseRecord(holder: "a", token: mine, expiresMilliseconds: 16_500)))
        // The same node id with another token (a restarted process) must wait like anyone else.
        let restarted = LeaseRecord(holder: "a", token: theirs, expiresMilliseconds: 9_000)
        #expect(
            p.decide(current: restarted, holder: "a", token: mine, nowMilliseconds: 5_000)
                == .heldBy(holder: "a", untilMilliseconds: 10_000))
        #expect(p.stillHeld(writtenAtMilliseconds: 0, nowMilliseconds: 6_000))
        #expect(!p.stillHeld(writtenAtMilliseconds: 0, nowMilliseconds: 6_667))
    }

    @Test("endpoints: http with host and port only")
    func endpoints() throws {
        let creds = S3Credentials(accessKey: "a", secretKey: "b")
        #expect(
            try S3Client(endpoint: "http://127.0.0.1:9000/", region: "r", credentials: creds).transport.port == 9000)
        #expect(try S3Client(endpoint: "http://s3.local", region: "r", credentials: creds).transport.port == 80)
        for bad in [
            "https://s3.amazonaws.com", "127.0.0.1:9000", "http://h:0", "http://h:x", "http://h/bucket", "http://",
        ] {
            #expect(throws: ObjectStoreError(.configuration, "")) {
                try S3Client(endpoint: bad, region: "r", credentials: creds)
            }
        }
    }

    @Test("retry delays grow, are capped and jittered")
    func retryDelays() {
        let r = RetryPolicy(maxAttempts: 5, baseDelayMilliseconds: 100, maxDelayMilliseconds: 1000)
        for _ in 0..<50 {
            #expect((50...100).contains(r.delayMilliseconds(after: 1)))
            #expect((200...400).contains(r.delayMilliseconds(after: 3)))
            #expect((500...1000).contains(r.delayMilliseconds(after: 9)))
        }
        #expect(RetryPolicy.isRetryable(status: 503) && !RetryPolicy.isRetryable(status: 507))
        #expect(!RetryPolicy.isRetryable(status: 403))
    }
}
