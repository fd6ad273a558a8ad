//! `cargo xtask bench web`: the console's budget. Builds the release site and respack-web,
//! gives one account 10,000 packs (a fresh SQLite database under `target/bench-web/`, kept for
//! the next run), signs in and loads Resource Packages server-side-rendered under a bounded
//! loopback load (a fixed number of clients, each waiting for its page before the next), and
//! measures the hydrate WASM raw and as served brotli-compressed. Last line is JSON.

use std::collections::BTreeMap;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{bail, ensure, Context, Result};
use respack_domain::chrono::{Duration, Utc};
use respack_domain::rust_decimal::Decimal;
use respack_domain::{CapacityItem, DeductionScope, Money, PackSpec, PaymentMode, RenewalMethod, Term, TimeUnit};
use respack_store::{Actor, Charge, Store};
use xshell::Shell;

use crate::serve::{build_web, free_port, seed, settings_for, Server};
use crate::site::{self, target_dir, workspace_root, WasmProfile};

const PACKS: usize = 10_000;
const CLIENTS: usize = 4;
const REQUESTS: usize = 800;

pub fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        bail!("`cargo xtask bench web` takes no arguments (got `{extra}`)");
    }
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    let out = target_dir().join("bench-web");
    let site_root = out.join("site");
    let wasm = site::build(&sh, &site_root, WasmProfile::Release)?;
    let wasm_bytes = match &wasm {
        Some(path) => Some(std::fs::metadata(path)?.len()),
        None => None,
    };
    let binary = build_web(&sh, true)?;

    let data_dir = out.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let settings = settings_for(&data_dir)?;
    seed(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(fill(&settings))?;

    let addr = format!("127.0.0.1:{}", free_port()?);
    let server = Server::start(&binary, &data_dir, &addr, &site_root, "warn", true)?;
    let figures = runtime.block_on(measure(&server.url, wasm.is_some()));
    drop(server);
    let figures = figures?;
    let result = serde_json::json!({
        "bench": "web",
        "wasm_bytes": wasm_bytes,
        "wasm_brotli_bytes": figures.wasm_brotli_bytes,
        "ssr_p50_ms": round2(figures.p50_ms),
        "ssr_p99_ms": round2(figures.p99_ms),
        "requests_per_s": round2(figures.requests_per_s),
    });
    println!("{result}");
    Ok(())
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Gives the demo customer (Acme Media) 10,000 packs in all, once.
async fn fill(settings: &respack_config::Settings) -> Result<()> {
    let store = Store::open(settings).await?;
    let account = crate::serve::demo_customer(&store).await?;
    let filter = respack_store::PackFilter { account_ids: vec![account.id], limit: 1, ..Default::default() };
    let now = Utc::now();
    let have = usize::try_from(store.list_packs(&filter, now).await?.total)?;
    if have < PACKS {
        println!("xtask: issuing {} packs to {} (once; kept in target/bench-web/data)", PACKS - have, account.name);
        let operator = Actor::system("bench-web");
        let started = Instant::now();
        for n in have..PACKS {
            let spec = PackSpec {
                name: format!("Bench pack {n:05}"),
                product: "p_mps".into(),
                subproduct: "sp_mps_general_transcoding".into(),
                region: "ap-guangzhou".into(),
                zone: String::new(),
                mode: PaymentMode::PeriodDecrement(TimeUnit::Month),
                term: Term { unit: TimeUnit::Month, count: 12 },
                time_zone: account.time_zone,
                effective_at: now - Duration::days(i64::try_from(n % 300)?),
                renewal: RenewalMethod::Manual,
                auto_renew_period: None,
                unit_price: Money::parse("10")?,
                scope: DeductionScope::default(),
                items: vec![CapacityItem::new("General transcoding", "minutes", Some(Decimal::from(1000)))],
                tags: BTreeMap::new(),
            };
            store.issue_pack(account.id, spec, Charge::Settled, None, &operator, now).await?;
            if (n + 1) % 1000 == 0 {
                println!("xtask: {} packs ({:.0}/s)", n + 1, (n + 1 - have) as f64 / started.elapsed().as_secs_f64());
            }
        }
    }
    store.close().await?;
    Ok(())
}

struct Figures {
    wasm_brotli_bytes: Option<usize>,
    p50_ms: f64,
    p99_ms: f64,
    requests_per_s: f64,
}

async fn measure(base: &str, bundle: bool) -> Result<Figures> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let response = client
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=demo%40acme.example&password=demo-customer")
        .send()
        .await?;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("respack_session="))
        .and_then(|value| value.split(';').next())
        .context("signing in gave no session cookie")?
        .to_owned();
    let wasm_brotli_bytes = if bundle {
        let compressed = client.get(format!("{base}/pkg/respack.wasm")).header("accept-encoding", "br").send().await?;
        ensure!(
            compressed.headers().get("content-encoding").is_some_and(|value| value == "br"),
            "the WASM was not served brotli-compressed"
        );
        Some(compressed.bytes().await?.len())
    } else {
        println!("xtask: no WASM bundle (wasm32 target missing): its sizes are reported as null");
        None
    };

    let page = format!("{base}/packs");
    // Warm-up: connections, caches, the first page's statements.
    for _ in 0..20 {
        let body = client.get(&page).header("cookie", &cookie).send().await?.text().await?;
        ensure!(body.contains("Bench pack"), "the page does not list the bench packs");
    }
    println!("xtask: {REQUESTS} page loads by {CLIENTS} clients");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, page, cookie) = (client.clone(), page.clone(), cookie.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(REQUESTS / CLIENTS);
            for _ in 0..REQUESTS / CLIENTS {
                let start = Instant::now();
                let response = client.get(&page).header("cookie", &cookie).send().await?;
                ensure!(response.status().is_success(), "page load failed: {}", response.status());
                response.bytes().await?;
                latencies.push(start.elapsed());
            }
            Ok::<Vec<StdDuration>, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    Ok(Figures {
        wasm_brotli_bytes,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        requests_per_s: latencies.len() as f64 / elapsed,
    })
}
