import AlexandriaGateway
import Testing

@Suite("Range headers (RFC 9110 §14)")
struct ByteRangeTests {
    @Test(
        arguments: [
            ("bytes=0-0", 100, ByteRangeRequest.partial(0..<1)),
            ("bytes=0-99", 100, .partial(0..<100)),
            ("bytes=10-", 100, .partial(10..<100)),
            ("bytes=90-500", 100, .partial(90..<100)),
            ("bytes=-10", 100, .partial(90..<100)),
            ("bytes=-500", 100, .partial(0..<100)),
            (" bytes = 5 - 6 ", 100, .partial(5..<7)),
            ("BYTES=1-2", 100, .partial(1..<3)),
            ("bytes=100-", 100, .unsatisfiable),
            ("bytes=100-200", 100, .unsatisfiable),
            ("bytes=-0", 100, .unsatisfiable),
            ("bytes=5-4", 100, .unsatisfiable),
            ("bytes=0-1,5-6", 100, .unsatisfiable),
            ("bytes=0-1,", 100, .unsatisfiable),
            ("bytes=", 100, .unsatisfiable),
            ("bytes=-", 100, .unsatisfiable),
            ("bytes=a-b", 100, .unsatisfiable),
            ("bytes=+1-2", 100, .unsatisfiable),
            ("bytes=0x10-", 100, .unsatisfiable),
            ("bytes=99999999999999999999-", 100, .unsatisfiable),
            ("bytes=0-99999999999999999999", 100, .unsatisfiable),
            ("bytes=0-18446744073709551615", 100, .partial(0..<100)),
            ("bytes=0-18446744073709551616", 100, .unsatisfiable),
            ("bytes=0-", 0, .unsatisfiable),
            ("bytes=-1", 0, .unsatisfiable),
            ("items=0-1", 100, .whole),
            ("garbage", 100, .unsatisfiable),
        ] as [(String, UInt64, ByteRangeRequest)])
    func decides(header: String, size: UInt64, expected: ByteRangeRequest) {
        #expect(ByteRangeRequest(header: header, size: size) == expected)
    }

    @Test func noHeaderOrStaleIfRangeIsTheWholeFile() {
        #expect(ByteRangeRequest(header: nil, size: 10) == .whole)
        #expect(ByteRangeRequest(header: "bytes=0-1", size: 10, ifRangeMatches: false) == .whole)
    }
}

@Suite("Request targets")
struct RequestTargetTests {
    @Test(arguments: [
        "/a/../b", "/a/%2e%2e/b", "/a/%2E%2E", "/a/./b", "/a/%2fetc", "/a/%2Fetc", "/a/b%00c", "/a/%5c", "/a/%zz",
        "/a/%2", "a/b", "*", "http://x/y", "/a/%ff%fe", "/a/\u{7f}", "/a/%0a",
    ])
    func rejects(uri: String) {
        #expect(RequestTarget(uri) == nil)
    }

    @Test func decodesSegmentsAndQuery() throws {
        let t = try #require(RequestTarget("/api/models/o/n/tree/1.0%2Bx/d%20e?recursive=true&a=b+c"))
        #expect(t.segments == ["api", "models", "o", "n", "tree", "1.0+x", "d e"])
        #expect(t.query("recursive") == "true")
        #expect(t.query("a") == "b c")
        #expect(RequestTarget("/v2/")?.segments == ["v2", ""])
    }
}
