-- The product profile a tenant speaks (NULL: the deployment's default, TOCSIN_PROFILE).
ALTER TABLE tenants ADD COLUMN profile TEXT;
