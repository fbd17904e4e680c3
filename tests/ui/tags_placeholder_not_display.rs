use cache_tower::cached_tower;

pub struct Tenant {
    pub id: String,
}

#[cached_tower(config = "users", key = "{tenant.id}:{page}", tags = ["tenant:{tenant}"])]
fn load_page(tenant: &Tenant, page: u32) -> u32 {
    tenant.id.len() as u32 + page
}

fn main() {
    load_page(&Tenant { id: "acme".to_owned() }, 1);
}
