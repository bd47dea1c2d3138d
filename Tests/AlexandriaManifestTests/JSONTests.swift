import AlexandriaManifest
import Testing

@Suite("Strict JSON and RFC 8785 canonical form")
struct JSONTests {
    @Test(arguments: [
        "{\"a\":1,\"a\":2}", "9007199254740992", "-9007199254740992", "1.5", "1e3", "-0", "01", "[1,]", "{\"a\":1,}",
        "\"\\ud800\"", "\"a\u{01}b\"", "[1] 2", "", "{\"a\" 1}", "tru", "\"\\q\"", "{1:2}",
    ])
    func rejects(text: String) {
        #expect(throws: JSONError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func rejectsDeepNesting() {
        let deep =
            String(repeating: "[", count: JSONLimits.maxDepth + 1)
            + String(repeating: "]", count: JSONLimits.maxDepth + 1)
        #expect(throws: JSONError.self) { try JSONValue.parse(Array(deep.utf8)) }
        let ok = String(repeating: "[", count: JSONLimits.maxDepth) + String(repeating: "]", count: JSONLimits.maxDepth)
        #expect(throws: Never.self) { try JSONValue.parse(Array(ok.utf8)) }
    }

    @Test func acceptsTheLimitsExactly() throws {
        #expect(try JSONValue.parse(Array("9007199254740991".utf8)) == .int(9_007_199_254_740_991))
        #expect(try JSONValue.parse(Array("\"\\ud83d\\ude00\"".utf8)) == .string("😀"))
    }

    @Test func canonicalFormSortsAndEscapesAsRFC8785() throws {
        let value = try JSONValue.parse(Array(#" { "b" : [ 1 , true , null ], "a" : "x\n\u0001é\"/" , "€": 0 } "#.utf8))
        #expect(String(decoding: value.canonical, as: UTF8.self) == #"{"a":"x\n\u0001é\"/","b":[1,true,null],"€":0}"#)
        // Sorting is by UTF-16 code units: U+E000 sorts before U+1F600 (a surrogate pair starting 0xD83D)? No: D83D < E000.
        let order = JSONValue.object([("\u{E000}", .int(1)), ("😀", .int(2))])
        #expect(String(decoding: order.canonical, as: UTF8.self) == "{\"😀\":2,\"\u{E000}\":1}")
    }
}
