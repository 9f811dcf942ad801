fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../proto/mls_client.proto");
    tonic_build::configure()
        .build_client(false)
        .compile_protos(&["../proto/mls_client.proto"], &["../proto"])?;
    Ok(())
}
