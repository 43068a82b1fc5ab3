pub async fn stitched_scan() {}
pub async fn point_lookup() {}
