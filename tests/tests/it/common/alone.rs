//! A test alone in a process. The tests of this binary share one process; a test that measures
//! the process itself (its resident memory) would count whatever the tests beside it do, so it
//! runs again in a child process: this same binary, filtered to exactly that test.

/// Set in the child, to the test it runs.
const ALONE: &str = "DUO_ADMIN_TEST_ALONE";

/// True in the child: run the test's body. Otherwise runs `test` (its path in this binary,
/// e.g. `faults::the_test`) in a child process, fails if it failed, and returns false: the
/// caller then returns, its body having run in the child.
///
/// `pool` is the test's database: `#[sqlx::test]` names it after the test's path, so the child's
/// test uses the same name and first drops it. The parent closes its connections to it first,
/// or that drop would be refused while one of them is still open.
pub async fn in_own_process(test: &str, pool: &sqlx::PgPool) -> bool {
    if std::env::var(ALONE).is_ok_and(|running| running == test) {
        return true;
    }
    pool.close().await;
    let binary = std::env::current_exe().expect("the test binary's path");
    let child = tokio::process::Command::new(binary)
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the test binary starts again");
    let stdout = String::from_utf8_lossy(&child.stdout);
    // Indented, so that a run summing the lines that start "test result:" counts this test once.
    let report = format!("{stdout}{}", String::from_utf8_lossy(&child.stderr)).replace('\n', "\n    ");
    assert!(child.status.success(), "{test}, alone in a process, failed:\n    {report}");
    assert!(stdout.contains("test result: ok. 1 passed"), "{test} did not run alone:\n    {report}");
    false
}
