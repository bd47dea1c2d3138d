import AlexandriaHome
import Testing

@Suite struct ObjectStoreConfigTests {
    @Test func s3BackendParsesAndLocalIsTheDefault() throws {
        #expect(try HomeConfig(toml: TOMLSubset(parsing: HomeConfig.defaultText)).s3 == nil)
        let text = """
            [store]
            backend = "s3"
            endpoint = "http://127.0.0.1:8080"
            bucket = "models"
            prefix = "node-a/"
            credentials_file = "/etc/alexandria/s3"
            """
        let s3 = try #require(try HomeConfig(toml: TOMLSubset(parsing: text)).s3)
        #expect(s3.endpoint == "http://127.0.0.1:8080" && s3.bucket == "models" && s3.prefix == "node-a/")
        #expect(s3.region == "us-east-1" && s3.credentialsFile == "/etc/alexandria/s3")
        #expect(s3.abortUploadsAfterSeconds == 3600)
        let quick = try #require(
            try HomeConfig(toml: TOMLSubset(parsing: text + "\nabort_uploads_after = 600")).s3)
        #expect(quick.abortUploadsAfterSeconds == 600)
    }

    @Test(arguments: [
        "backend = \"ftp\"",
        "bucket = \"models\"",
        "backend = \"s3\"\nbucket = \"models\"",
        "backend = \"s3\"\nendpoint = \"https://s3.example\"\nbucket = \"models\"",
        "backend = \"s3\"\nendpoint = \"http://h:1\"",
        "backend = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"Bad_Name\"",
        "backend = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"models\"\nprefix = \"no-slash\"",
        "backend = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"models\"\nregion = 5",
        "backend = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"models\"\nsecret = \"x\"",
        "backend = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"models\"\nabort_uploads_after = -1",
        "backend = \"s3\"\nendpoint = \"http://h:1\"\nbucket = \"models\"\nabort_uploads_after = \"1h\"",
        "abort_uploads_after = 60",
    ])
    func badSettingsAreErrors(store: String) {
        #expect(throws: (any Error).self) { try HomeConfig(toml: TOMLSubset(parsing: "[store]\n" + store)) }
    }
}
