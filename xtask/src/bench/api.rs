//! `cargo xtask bench api`: `DescribeBillResourceSummary` over a month of 1,000,000 bill lines
//! on 10,000 resources (one account, every ActionType), signed requests over loopback HTTP with
//! the rate limit lifted. A bounded load of random pages of 100, then pages at a deep offset.
//! Prints progress, then one JSON line.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{bail, ensure, Context, Result};
use respack_domain::chrono::{DateTime, TimeZone, Utc};
use respack_domain::chrono_tz::Tz;
use respack_domain::BillActionType;
use respack_store::{Actor, NewAccount, SealingKey, Store};
use respack_tc_api::signature::{authorization_header, SignedRequest};
use respack_tc_api::{ApiConfig, TcApi};
use sea_orm::{ConnectionTrait, Database, TransactionTrait, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::workload::insert_rows;

const MONTH: &str = "2026-10";
const PAGE: usize = 100;

struct Options {
    lines: usize,
    resources: usize,
    clients: usize,
    requests: usize,
    deep_offset: usize,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options =
        Options { lines: 1_000_000, resources: 10_000, clients: 4, requests: 2_000, deep_offset: 100_000 };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value: usize = args
            .next()
            .with_context(|| format!("{flag} needs a number"))?
            .replace('_', "")
            .parse()
            .with_context(|| format!("{flag} needs a whole number"))?;
        match flag.as_str() {
            "--lines" => options.lines = value,
            "--resources" => options.resources = value,
            "--clients" => options.clients = value,
            "--requests" => options.requests = value,
            "--deep-offset" => options.deep_offset = value,
            other => bail!("unknown option {other}; use --lines, --resources, --clients, --requests, --deep-offset"),
        }
    }
    ensure!(options.resources > 0 && options.lines >= options.resources, "need lines >= resources > 0");
    ensure!(options.clients > 0 && options.requests > 0, "need at least one client and one request");
    Ok(options)
}

pub fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("respack-bench-api-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let outcome = bench(&options, &dir).await;
        let _ = std::fs::remove_dir_all(&dir);
        outcome
    })
}

async fn bench(options: &Options, dir: &std::path::Path) -> Result<()> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("respack.db").display());
    let store = Store::connect(&url, SealingKey::from_bytes(rand::random())).await?;
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).single().context("a valid instant")?;
    let account = store.create_account(NewAccount::customer("Bench", Tz::UTC), &Actor::system("bench"), now).await?;
    let key = store.create_api_key(account.id, "bench", &Actor::system("bench"), now).await?;

    println!("bench api: seeding {} bill lines over {} resources in {MONTH}", options.lines, options.resources);
    let started = Instant::now();
    seed_lines(&url, account.id, options).await?;
    println!("bench api: seeded in {:.1}s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let build = store.build_bill_summary(MONTH, now).await?;
    println!(
        "bench api: summary built in {:.1}s: {} rows from {} lines",
        started.elapsed().as_secs_f64(),
        build.summaries,
        build.lines
    );
    ensure!(build.lines as usize == options.lines, "the summary saw {} lines, not {}", build.lines, options.lines);
    let rows = usize::try_from(build.summaries)?;
    ensure!(rows > options.deep_offset + PAGE, "only {rows} summary rows; lower --deep-offset");

    let config = ApiConfig { rate_limit_per_second: 0, ..ApiConfig::default() };
    let api = TcApi::new(store.clone(), move || now, config);
    let app: axum::Router = respack_tc_api::router(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Arc::new(Client {
        address,
        secret_id: key.info.secret_id,
        secret_key: key.secret_key.expose().to_owned(),
        now,
    });

    // Warm up the connection pool and caches.
    let mut connection = client.connect().await?;
    for offset in [0, rows / 2, options.deep_offset] {
        client.page(&mut connection, offset).await?;
    }

    println!(
        "bench api: {} clients, {} signed requests for random pages of {PAGE} (NeedRecordNum=1)",
        options.clients, options.requests
    );
    let started = Instant::now();
    let per_client = options.requests.div_ceil(options.clients);
    let mut tasks = Vec::new();
    for n in 0..options.clients {
        let client = Arc::clone(&client);
        tasks.push(tokio::spawn(async move {
            let mut connection = client.connect().await?;
            let mut latencies = Vec::with_capacity(per_client);
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (n as u64 + 1);
            for _ in 0..per_client {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let offset = usize::try_from(seed % (rows - PAGE) as u64).unwrap_or(0);
                latencies.push(client.page(&mut connection, offset).await?);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests_per_s = latencies.len() as f64 / elapsed;
    let (p50, p99) = percentiles(&mut latencies);

    println!("bench api: {} requests at Offset {}", options.requests.min(500), options.deep_offset);
    let mut deep = Vec::new();
    for _ in 0..options.requests.min(500) {
        deep.push(client.page(&mut connection, options.deep_offset).await?);
    }
    let (_, deep_p99) = percentiles(&mut deep);
    server.abort();
    store.close().await?;
    println!(
        "bench api: {requests_per_s:.0} requests/s, p50 {p50:.2} ms, p99 {p99:.2} ms, p99 at Offset {} {deep_p99:.2} ms",
        options.deep_offset
    );
    let round = |v: f64| (v * 100.0).round() / 100.0;
    println!(
        "{}",
        serde_json::json!({
            "bench": "api",
            "requests_per_s": requests_per_s.round(),
            "p50_ms": round(p50),
            "p99_ms": round(p99),
            "deep_offset_p99_ms": round(deep_p99),
        })
    );
    Ok(())
}

/// p50 and p99 in milliseconds.
fn percentiles(latencies: &mut [StdDuration]) -> (f64, f64) {
    latencies.sort_unstable();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Bill lines: each resource gets lines of several ActionTypes, so the month has about
/// `resources × 15` summary rows.
async fn seed_lines(url: &str, account_id: i64, options: &Options) -> Result<()> {
    let db = Database::connect(url).await?;
    db.execute_unprepared("PRAGMA synchronous = OFF").await?;
    let month_start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).single().context("an instant")?;
    let columns = "account_id, bill_month, resource_id, resource_name, order_id, action_type, pay_mode, \
                   business_code, product_code, region, zone, config_desc, total_cost, cash_pay_amount, \
                   fee_begin_at, fee_end_at, pay_time, operate_user_id, settlement_key, created_at";
    let mut written = 0;
    while written < options.lines {
        let batch = (options.lines - written).min(50_000);
        let mut rows = Vec::with_capacity(batch);
        for n in written..written + batch {
            let resource = n % options.resources;
            let action = BillActionType::ALL[(n / options.resources) % BillActionType::ALL.len()];
            let at = month_start.timestamp_millis() + (n as i64 % 2_592_000) * 1000;
            rows.push(vec![
                Value::from(account_id),
                MONTH.into(),
                format!("rp-bench{resource:06}").into(),
                format!("Bench pack {resource}").into(),
                format!("order-{n}").into(),
                action.as_str().into(),
                action.pay_mode().as_str().into(),
                "p_mps".into(),
                "sp_mps_general_transcoding".into(),
                "ap-guangzhou".into(),
                "ap-guangzhou-3".into(),
                "Period decrement: 100 minutes per month × 1 month".into(),
                Value::from(1_000_000_i64 + (n as i64 % 997)),
                Value::from(1_000_000_i64 + (n as i64 % 997)),
                Value::from(at),
                Value::from(at + 86_400_000),
                Value::from(at),
                Value::from(None::<String>),
                Value::from(None::<String>),
                Value::from(at),
            ]);
        }
        let tx = db.begin().await?;
        insert_rows(&tx, "bill_lines", columns, rows, "").await?;
        tx.commit().await?;
        written += batch;
    }
    db.close().await?;
    Ok(())
}

struct Client {
    address: String,
    secret_id: String,
    secret_key: String,
    now: DateTime<Utc>,
}

impl Client {
    async fn connect(&self) -> Result<TcpStream> {
        let stream = TcpStream::connect(&self.address).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// One signed DescribeBillResourceSummary over a kept-alive connection; its latency.
    async fn page(&self, stream: &mut TcpStream, offset: usize) -> Result<StdDuration> {
        let body = format!(r#"{{"Offset":{offset},"Limit":{PAGE},"Month":"{MONTH}","NeedRecordNum":1}}"#);
        let headers =
            vec![("content-type".to_owned(), "application/json".to_owned()), ("host".to_owned(), self.address.clone())];
        let signed = SignedRequest { method: "POST", uri: "/", query: "", headers: &headers, payload: body.as_bytes() };
        let timestamp = self.now.timestamp();
        let started = Instant::now();
        let authorization = authorization_header(&self.secret_id, &self.secret_key, "billing", timestamp, &signed);
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAuthorization: {authorization}\r\n\
             X-TC-Action: DescribeBillResourceSummary\r\nX-TC-Version: 2018-07-09\r\nX-TC-Timestamp: {timestamp}\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.address,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let response = read_response(stream).await?;
        let elapsed = started.elapsed();
        let answer: serde_json::Value = serde_json::from_slice(&response).context("the answer is not JSON")?;
        let rows = answer["Response"]["ResourceSummarySet"].as_array().map_or(0, Vec::len);
        ensure!(rows == PAGE, "expected a page of {PAGE} rows at Offset {offset}, got {answer}");
        Ok(elapsed)
    }
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns the body.
async fn read_response(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        ensure!(read > 0, "the server closed the connection");
        buffer.extend_from_slice(&chunk[..read]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .context("the response has no Content-Length")?
            .trim()
            .parse()?;
        let body_start = end + 4;
        while buffer.len() < body_start + length {
            let read = stream.read(&mut chunk).await?;
            ensure!(read > 0, "the server closed the connection");
            buffer.extend_from_slice(&chunk[..read]);
        }
        return Ok(buffer[body_start..body_start + length].to_vec());
    }
}
