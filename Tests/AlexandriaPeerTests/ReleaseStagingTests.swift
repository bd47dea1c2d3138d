import AlexandriaPeer
import Testing

/// A release fetch stages its files beside the folder; a process killed after moving them but before recording the
/// move has its links pointed at the folder by `Fetcher.recoverInterruptedFetches`, through this mapping.
@Suite("Release staging paths")
struct ReleaseStagingTests {
    @Test func aStagedPathMapsToItsPlaceInTheFolder() {
        #expect(
            ReleaseFetch.committedPath(ofStaged: "/data/.model.alexandria-staging-0123456789abcdef/weights/x.bin")
                == "/data/model/weights/x.bin")
        #expect(
            ReleaseFetch.committedPath(ofStaged: "/.m.v2.alexandria-staging-00000000000000ff/config.json")
                == "/m.v2/config.json")
        #expect(ReleaseFetch.committedPath(ofStaged: "/data/model/weights/x.bin") == nil)
        #expect(ReleaseFetch.committedPath(ofStaged: "/data/.alexandria-staging-0123456789abcdef/x") == nil)
    }
}
