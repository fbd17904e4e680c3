use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_tower::CacheTower;

#[tokio::main]
async fn main() -> cache_tower::Result<()> {
    let tower = Arc::new(CacheTower::from_json(r#"[{"adapter": "memory", "ttl": 60}]"#)?);

    tower.set_async("question", "six by nine".to_string()).await?;
    let answer = tower.get_or_set_async("answer", || async { 42u32 }).await;
    assert_eq!(tower.get_async::<u32>("answer").await, Some(answer));
    let found = tower.mget_async::<String, _>(&["question", "nowhere"]).await;
    println!("{found:?}");

    // Ten tasks asking for the same missing key: one computes it, the others get its value.
    let computed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (tower, computed) = (Arc::clone(&tower), Arc::clone(&computed));
        tasks.push(tokio::spawn(async move {
            let compute = move || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                "expensive".to_string()
            };
            tower.get_or_set_async("report", compute).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.expect("the task ran"), "expensive");
    }
    assert_eq!(computed.load(Ordering::SeqCst), 1);

    tower.delete_async("report").await?;
    assert!(!tower.exists_async("report").await);
    Ok(())
}
