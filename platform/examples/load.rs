// Placeholder so the workspace manifest parses until the platform load client lands.
fn main() {}
